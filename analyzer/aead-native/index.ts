// Opening protected PDMv2 options fast: a native module with one OpenSSL context per
// key, or node:crypto when it is not built. Only this file is imported from outside.

export { aeadBackend, nativeAeadContext, NATIVE_AEAD_PATH } from "./aead-native.ts";
export type { NativeAeadContext } from "./aead-native.ts";
