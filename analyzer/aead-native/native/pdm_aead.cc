// Node-API addon: the protected PDMv2 option's AEAD (wire.md 4) with one
// OpenSSL context per key, kept across packets; only the nonce is set per
// packet. node:crypto makes a new cipher object, and expands the key again, for
// every packet, which costs more than the rest of the analysis.
//
// Built against the OpenSSL that Node itself is linked with (its headers ship
// with Node's, and the node binary exports the symbols), so nothing else is
// needed at run time. A failed tag is a status, never an exception: it is a
// normal, counted event.
//
// new AeadContext(aeadId, key): aeadId 1 (AES-128-GCM, 16-byte key) or 3
// (ChaCha20-Poly1305, 32-byte key); the caller checks the key's length first.
//
// ctx.open(bytes, at, kri, out): the 36-byte option at bytes[at] (Type first).
// The nonce is made of kri and the option's Random Number + F, the AAD is its
// first 6 bytes, then come 14 bytes of ciphertext and the 16-byte tag. Writes
// the 14 opened bytes to out and returns 1, or returns 0 (out zeroed) when the
// tag does not verify, -1 when the option is not in bytes.
//
// ctx.openAt(at, kri): the same on the per-packet path. The option lies in the
// buffer last given to setInput(bytes), the opened bytes go to the one given to
// setOutput(out) (per thread: Node-API instance data), since passing two typed
// arrays costs more than the open itself.
//
// ctx.seal(nonce, aad, text, out): 12, 6 and 14 bytes in; ciphertext || tag
// (30 bytes) out.
//
// AES-128-GCM opens through OpenSSL's GCM mode (CRYPTO_gcm128_*, which picks
// the carry-less-multiply GHASH) fed with the option's two AES blocks, computed
// in one AES-128-ECB call of a kept EVP context (AES-NI): 65 ns an open here,
// against 170 ns through EVP's GCM, which re-initialises its provider state for
// every nonce.

#include <napi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/modes.h>

#include <cstring>
#include <memory>

namespace {

constexpr int kNonceLen = 12;
constexpr int kAadLen = 6;
constexpr int kTextLen = 14;
constexpr int kTagLen = 16;
constexpr int kOptionLen = 2 + 34;
// What one key's contexts hold outside V8's heap, told to V8 so that its
// collector frees the contexts of flows gone (about two EVP_CIPHER_CTX with
// their key schedules).
constexpr int64_t kExternalBytes = 2048;

// The buffers openAt reads and writes, one pair per thread (worker threads load
// the module again, each with its own instance data).
struct Buffers {
  Napi::Reference<Napi::Uint8Array> input, output;
  const uint8_t *in = nullptr;
  size_t inLength = 0;
  uint8_t *out = nullptr;
};

// The block cipher GCM mode calls, as CRYPTO_gcm128 expects it: it serves the
// blocks computed beforehand for this option (J0 for the tag's mask, J0 + 1 for
// the 14 bytes of text), and computes any other block (H, when the context is
// made) itself.
struct PrecomputedBlocks {
  EVP_CIPHER_CTX *ecb = nullptr;
  uint8_t in[32] = {};
  uint8_t out[32] = {};
  int ready = 0; // how many of in/out are this option's
};

void ServeBlock(const unsigned char in[16], unsigned char out[16],
                const void *key) {
  auto *b = static_cast<PrecomputedBlocks *>(const_cast<void *>(key));
  for (int i = 0; i < b->ready; i += 1) {
    if (std::memcmp(in, b->in + 16 * i, 16) == 0) {
      std::memcpy(out, b->out + 16 * i, 16);
      return;
    }
  }
  int len = 0;
  if (EVP_EncryptUpdate(b->ecb, out, &len, in, 16) != 1)
    std::memset(out, 0, 16); // (cannot fail: ECB, no padding)
}

// The key length of an AEAD this module knows; false for any other.
bool KeyLength(int aead, size_t *keyLen) {
  if (aead != 1 && aead != 3)
    return false;
  *keyLen = aead == 1 ? 16 : 32;
  return true;
}

// One key's OpenSSL state: what opens and seals with it. Shared by the
// AeadContext object and its openAt function, and freed when both are gone.
class KeyState {
public:
  // nullptr when OpenSSL refuses the contexts.
  static std::shared_ptr<KeyState> Make(int aead, const uint8_t *key,
                                        size_t keyLen) {
    auto k = std::shared_ptr<KeyState>(new KeyState());
    k->cipher_ = aead == 1 ? EVP_aes_128_gcm() : EVP_chacha20_poly1305();
    std::memcpy(k->key_, key, keyLen);
    bool made;
    if (aead == 1) {
      k->blocks_.ecb = EVP_CIPHER_CTX_new();
      made = k->blocks_.ecb &&
             EVP_EncryptInit_ex(k->blocks_.ecb, EVP_aes_128_ecb(), nullptr,
                                k->key_, nullptr) == 1 &&
             EVP_CIPHER_CTX_set_padding(k->blocks_.ecb, 0) == 1 &&
             (k->gcm_ = CRYPTO_gcm128_new(&k->blocks_, ServeBlock)) !=
                 nullptr; // computes H through ServeBlock
    } else {
      made = (k->decrypt_ = k->NewContext(false)) != nullptr;
    }
    return made ? k : nullptr;
  }

  ~KeyState() {
    if (gcm_)
      CRYPTO_gcm128_release(gcm_); // (cleanses the GHASH key)
    EVP_CIPHER_CTX_free(blocks_.ecb);
    EVP_CIPHER_CTX_free(decrypt_);
    EVP_CIPHER_CTX_free(encrypt_);
    OPENSSL_cleanse(&blocks_, sizeof blocks_);
    OPENSSL_cleanse(key_, sizeof key_);
  }

  // The 36-byte option at o (Type first): 1 and the 14 opened bytes in plain,
  // or 0 with plain zeroed, since nothing of an unverified option may leave.
  int OpenOption(const uint8_t *o, uint32_t kri, uint8_t *plain) {
    uint8_t nonce[kNonceLen] = {0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                uint8_t(kri >> 24),
                                uint8_t(kri >> 16),
                                uint8_t(kri >> 8),
                                uint8_t(kri),
                                o[4],
                                o[5]};
    uint8_t tag[kTagLen];
    std::memcpy(tag, o + 6 + kTextLen,
                kTagLen); // the APIs take non-const pointers
    int ok;
    if (gcm_) {
      // The counter blocks of a 12-byte nonce: J0 = nonce || 1 masks the tag,
      // nonce || 2 the text.
      for (int i = 0; i < 2; i += 1) {
        std::memcpy(blocks_.in + 16 * i, nonce, kNonceLen);
        blocks_.in[16 * i + 12] = blocks_.in[16 * i + 13] =
            blocks_.in[16 * i + 14] = 0;
        blocks_.in[16 * i + 15] = uint8_t(1 + i);
      }
      int len = 0;
      ok = EVP_EncryptUpdate(blocks_.ecb, blocks_.out, &len, blocks_.in, 32) ==
           1;
      blocks_.ready = ok ? 2 : 0;
      if (ok) {
        CRYPTO_gcm128_setiv(gcm_, nonce, kNonceLen);
        ok = CRYPTO_gcm128_aad(gcm_, o, kAadLen) == 0 &&
             CRYPTO_gcm128_decrypt(gcm_, o + 6, plain, kTextLen) == 0 &&
             CRYPTO_gcm128_finish(gcm_, tag, kTagLen) == 0;
      }
      blocks_.ready = 0;
    } else {
      int len = 0;
      ok =
          EVP_DecryptInit_ex(decrypt_, nullptr, nullptr, nullptr, nonce) == 1 &&
          EVP_DecryptUpdate(decrypt_, nullptr, &len, o, kAadLen) == 1 &&
          EVP_DecryptUpdate(decrypt_, plain, &len, o + 6, kTextLen) == 1 &&
          EVP_CIPHER_CTX_ctrl(decrypt_, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) ==
              1 &&
          EVP_DecryptFinal_ex(decrypt_, plain + len, &len) == 1;
    }
    if (!ok)
      std::memset(plain, 0, kTextLen);
    return ok ? 1 : 0;
  }

  // Ciphertext || tag (30 bytes) into out; false when OpenSSL fails.
  bool Seal(const uint8_t *nonce, const uint8_t *aad, const uint8_t *text,
            uint8_t *out) {
    if (!encrypt_ && !(encrypt_ = NewContext(true)))
      return false;
    int len = 0;
    return EVP_EncryptInit_ex(encrypt_, nullptr, nullptr, nullptr, nonce) ==
               1 &&
           EVP_EncryptUpdate(encrypt_, nullptr, &len, aad, kAadLen) == 1 &&
           EVP_EncryptUpdate(encrypt_, out, &len, text, kTextLen) == 1 &&
           EVP_EncryptFinal_ex(encrypt_, out + len, &len) == 1 &&
           EVP_CIPHER_CTX_ctrl(encrypt_, EVP_CTRL_AEAD_GET_TAG, kTagLen,
                               out + kTextLen) == 1;
  }

private:
  KeyState() = default;

  // A context with the cipher and key set, the nonce length 12; each packet
  // sets only the nonce.
  EVP_CIPHER_CTX *NewContext(bool encrypt) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
      return nullptr;
    if (EVP_CipherInit_ex(ctx, cipher_, nullptr, nullptr, nullptr,
                          encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, kNonceLen, nullptr) !=
            1 ||
        EVP_CipherInit_ex(ctx, nullptr, nullptr, key_, nullptr,
                          encrypt ? 1 : 0) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      return nullptr;
    }
    return ctx;
  }

  const EVP_CIPHER *cipher_ = nullptr;
  uint8_t key_[32] = {};
  // AES-128-GCM's open: GCM mode over the blocks of a kept ECB context.
  PrecomputedBlocks blocks_;
  GCM128_CONTEXT *gcm_ = nullptr;
  // ChaCha20-Poly1305's open, and both AEADs' seal: EVP.
  EVP_CIPHER_CTX *decrypt_ = nullptr;
  EVP_CIPHER_CTX *encrypt_ = nullptr;
};

// ctx.openAt(at, kri), written against the C interface of Node-API: a function
// of its own per key, its KeyState the function's data. An ObjectWrap method
// costs some 100 ns a call here (unwrapping `this` alone is 50), this 22.
napi_value OpenAtCallback(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *data = nullptr;
  napi_value result = nullptr;
  int64_t at = -1;
  uint32_t kri = 0;
  void *buffers = nullptr;
  int status = -1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) == napi_ok &&
      argc == 2 && napi_get_value_int64(env, argv[0], &at) == napi_ok &&
      napi_get_value_uint32(env, argv[1], &kri) == napi_ok &&
      napi_get_instance_data(env, &buffers) == napi_ok && buffers) {
    auto *b = static_cast<Buffers *>(buffers);
    auto *key = static_cast<std::shared_ptr<KeyState> *>(data);
    if (b->in && b->out && at >= 0 &&
        static_cast<uint64_t>(at) + kOptionLen <= b->inLength)
      status = (*key)->OpenOption(b->in + at, kri, b->out);
  }
  napi_create_int32(env, status, &result);
  return result;
}

class AeadContext : public Napi::ObjectWrap<AeadContext> {
public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AeadContext",
                       {InstanceMethod("open", &AeadContext::Open),
                        InstanceMethod("seal", &AeadContext::Seal)});
  }

  explicit AeadContext(const Napi::CallbackInfo &info)
      : Napi::ObjectWrap<AeadContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "AeadContext(aeadId, key)");
    size_t keyLen = 0;
    const int aead = info[0].As<Napi::Number>().Int32Value();
    if (!KeyLength(aead, &keyLen))
      throw Napi::RangeError::New(
          env, "AEAD id must be 1 (AES-128-GCM) or 3 (ChaCha20-Poly1305)");
    auto key = info[1].As<Napi::Uint8Array>();
    if (key.ByteLength() != keyLen)
      throw Napi::RangeError::New(env, "key of the wrong length for this AEAD");
    key_ = KeyState::Make(aead, key.Data(), keyLen);
    if (!key_)
      throw Napi::Error::New(env, "OpenSSL refused the AEAD context");
    // openAt: a plain function holding its own reference to the key's state.
    napi_value fn;
    auto *held = new std::shared_ptr<KeyState>(key_);
    if (napi_create_function(env, "openAt", NAPI_AUTO_LENGTH, OpenAtCallback,
                             held, &fn) != napi_ok ||
        napi_add_finalizer(
            env, fn, held,
            [](napi_env, void *data, void *) {
              delete static_cast<std::shared_ptr<KeyState> *>(data);
            },
            nullptr, nullptr) != napi_ok) {
      delete held;
      throw Napi::Error::New(env, "could not make openAt");
    }
    info.This().As<Napi::Object>().Set("openAt", Napi::Value(env, fn));
    Napi::MemoryManagement::AdjustExternalMemory(env, kExternalBytes);
  }

  void Finalize(Napi::Env env) override {
    Napi::MemoryManagement::AdjustExternalMemory(env, -kExternalBytes);
  }

private:
  Napi::Value Open(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto bytes = info[0].As<Napi::Uint8Array>();
    const int64_t at = info[1].As<Napi::Number>().Int64Value();
    const uint32_t kri = info[2].As<Napi::Number>().Uint32Value();
    auto out = info[3].As<Napi::Uint8Array>();
    if (at < 0 || static_cast<uint64_t>(at) + kOptionLen > bytes.ByteLength() ||
        out.ByteLength() < kTextLen)
      return Napi::Number::New(env, -1);
    return Napi::Number::New(
        env, key_->OpenOption(bytes.Data() + at, kri, out.Data()));
  }

  Napi::Value Seal(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto nonce = info[0].As<Napi::Uint8Array>();
    auto aad = info[1].As<Napi::Uint8Array>();
    auto text = info[2].As<Napi::Uint8Array>();
    auto out = info[3].As<Napi::Uint8Array>();
    if (nonce.ByteLength() != kNonceLen || aad.ByteLength() != kAadLen ||
        text.ByteLength() != kTextLen || out.ByteLength() < kTextLen + kTagLen)
      throw Napi::RangeError::New(env,
                                  "seal(nonce 12, aad 6, text 14, out 30)");
    if (!key_->Seal(nonce.Data(), aad.Data(), text.Data(), out.Data()))
      throw Napi::Error::New(env, "OpenSSL failed to seal");
    return env.Undefined();
  }

  std::shared_ptr<KeyState> key_;
};

Buffers *BuffersOf(Napi::Env env) {
  Buffers *b = env.GetInstanceData<Buffers>();
  if (!b) {
    b = new Buffers();
    env.SetInstanceData(b); // deleted with the environment
  }
  return b;
}

Napi::Value SetInput(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray())
    throw Napi::TypeError::New(env, "setInput(Uint8Array)");
  auto bytes = info[0].As<Napi::Uint8Array>();
  Buffers *b = BuffersOf(env);
  b->input = Napi::Persistent(bytes); // kept alive while openAt may read it
  b->in = bytes.Data();
  b->inLength = bytes.ByteLength();
  return env.Undefined();
}

Napi::Value SetOutput(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::Uint8Array>().ByteLength() < kTextLen)
    throw Napi::TypeError::New(env,
                               "setOutput(Uint8Array of 14 bytes or more)");
  auto out = info[0].As<Napi::Uint8Array>();
  Buffers *b = BuffersOf(env);
  b->output = Napi::Persistent(out);
  b->out = out.Data();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("AeadContext", AeadContext::Define(env));
  exports.Set("setInput", Napi::Function::New(env, SetInput, "setInput"));
  exports.Set("setOutput", Napi::Function::New(env, SetOutput, "setOutput"));
  exports.Set("openssl",
              Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

} // namespace

NODE_API_MODULE(pdm_aead, Init)
