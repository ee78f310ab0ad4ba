// Node-API addon: the protected PDMv2 option's AEAD (wire.md 4) with one OpenSSL
// context per key, kept across packets; only the nonce is set per packet. node:crypto
// makes a new cipher object, and expands the key again, for every packet, which costs
// more than the rest of the analysis.
//
// Built against the OpenSSL that Node itself is linked with (its headers ship with
// Node's, and the node binary exports the symbols), so nothing else is needed at run
// time. A failed tag is a status, never an exception: it is a normal, counted event.
//
//   new AeadContext(aeadId, key)      aeadId 1 (AES-128-GCM, 16-byte key) or 3
//                                     (ChaCha20-Poly1305, 32-byte key); the caller
//                                     checks the key's length first
//   ctx.open(bytes, at, kri, out)     the 36-byte option at bytes[at] (Type first):
//                                     nonce from kri and its Random Number + F, AAD its
//                                     first 6 bytes, then 14 bytes of ciphertext and the
//                                     16-byte tag. Writes the 14 opened bytes to out and
//                                     returns 1, or returns 0 (out zeroed) when the tag
//                                     does not verify, -1 when the option is not in bytes
//   ctx.seal(nonce, aad, text, out)   12, 6 and 14 bytes in; ciphertext || tag (30) out

#include <napi.h>
#include <openssl/evp.h>

#include <cstring>

namespace {

constexpr int kNonceLen = 12;
constexpr int kAadLen = 6;
constexpr int kTextLen = 14;
constexpr int kTagLen = 16;
constexpr int kOptionLen = 2 + 34;
// What one key's contexts hold outside V8's heap, told to V8 so that its collector
// frees the contexts of flows gone (about two EVP_CIPHER_CTX with their key schedules).
constexpr int64_t kExternalBytes = 2048;

const EVP_CIPHER *CipherOf(int aead, size_t *keyLen) {
  if (aead == 1) {
    *keyLen = 16;
    return EVP_aes_128_gcm();
  }
  if (aead == 3) {
    *keyLen = 32;
    return EVP_chacha20_poly1305();
  }
  return nullptr;
}

class AeadContext : public Napi::ObjectWrap<AeadContext> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AeadContext",
                       {InstanceMethod("open", &AeadContext::Open), InstanceMethod("seal", &AeadContext::Seal)});
  }

  explicit AeadContext(const Napi::CallbackInfo &info) : Napi::ObjectWrap<AeadContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "AeadContext(aeadId, key)");
    size_t keyLen = 0;
    cipher_ = CipherOf(info[0].As<Napi::Number>().Int32Value(), &keyLen);
    if (!cipher_) throw Napi::RangeError::New(env, "AEAD id must be 1 (AES-128-GCM) or 3 (ChaCha20-Poly1305)");
    auto key = info[1].As<Napi::Uint8Array>();
    if (key.ByteLength() != keyLen) throw Napi::RangeError::New(env, "key of the wrong length for this AEAD");
    std::memcpy(key_, key.Data(), keyLen);
    decrypt_ = NewContext(false);
    if (!decrypt_) throw Napi::Error::New(env, "OpenSSL refused the AEAD context");
    Napi::MemoryManagement::AdjustExternalMemory(env, kExternalBytes);
  }

  void Finalize(Napi::Env env) override { Napi::MemoryManagement::AdjustExternalMemory(env, -kExternalBytes); }

  ~AeadContext() override {
    EVP_CIPHER_CTX_free(decrypt_);
    EVP_CIPHER_CTX_free(encrypt_);
    OPENSSL_cleanse(key_, sizeof key_);
  }

 private:
  // A context with the cipher and key set, the nonce length 12; each packet sets only the nonce.
  EVP_CIPHER_CTX *NewContext(bool encrypt) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return nullptr;
    if (EVP_CipherInit_ex(ctx, cipher_, nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, kNonceLen, nullptr) != 1 ||
        EVP_CipherInit_ex(ctx, nullptr, nullptr, key_, nullptr, encrypt ? 1 : 0) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      return nullptr;
    }
    return ctx;
  }

  Napi::Value Open(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto bytes = info[0].As<Napi::Uint8Array>();
    const int64_t at = info[1].As<Napi::Number>().Int64Value();
    const uint32_t kri = info[2].As<Napi::Number>().Uint32Value();
    auto out = info[3].As<Napi::Uint8Array>();
    if (at < 0 || static_cast<uint64_t>(at) + kOptionLen > bytes.ByteLength() || out.ByteLength() < kTextLen)
      return Napi::Number::New(env, -1);
    const uint8_t *o = bytes.Data() + at;
    uint8_t nonce[kNonceLen] = {0, 0, 0, 0, 0, 0, uint8_t(kri >> 24), uint8_t(kri >> 16), uint8_t(kri >> 8),
                                uint8_t(kri), o[4], o[5]};
    uint8_t tag[kTagLen];
    std::memcpy(tag, o + 6 + kTextLen, kTagLen);  // set_tag takes a non-const pointer
    uint8_t *plain = out.Data();
    int len = 0;
    int ok = EVP_DecryptInit_ex(decrypt_, nullptr, nullptr, nullptr, nonce) == 1 &&
             EVP_DecryptUpdate(decrypt_, nullptr, &len, o, kAadLen) == 1 &&
             EVP_DecryptUpdate(decrypt_, plain, &len, o + 6, kTextLen) == 1 &&
             EVP_CIPHER_CTX_ctrl(decrypt_, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) == 1 &&
             EVP_DecryptFinal_ex(decrypt_, plain + len, &len) == 1;
    if (!ok) std::memset(plain, 0, kTextLen);  // nothing of an unverified option leaves
    return Napi::Number::New(env, ok ? 1 : 0);
  }

  Napi::Value Seal(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto nonce = info[0].As<Napi::Uint8Array>();
    auto aad = info[1].As<Napi::Uint8Array>();
    auto text = info[2].As<Napi::Uint8Array>();
    auto out = info[3].As<Napi::Uint8Array>();
    if (nonce.ByteLength() != kNonceLen || aad.ByteLength() != kAadLen || text.ByteLength() != kTextLen ||
        out.ByteLength() < kTextLen + kTagLen)
      throw Napi::RangeError::New(env, "seal(nonce 12, aad 6, text 14, out 30)");
    if (!encrypt_ && !(encrypt_ = NewContext(true))) throw Napi::Error::New(env, "OpenSSL refused the AEAD context");
    int len = 0;
    if (EVP_EncryptInit_ex(encrypt_, nullptr, nullptr, nullptr, nonce.Data()) != 1 ||
        EVP_EncryptUpdate(encrypt_, nullptr, &len, aad.Data(), kAadLen) != 1 ||
        EVP_EncryptUpdate(encrypt_, out.Data(), &len, text.Data(), kTextLen) != 1 ||
        EVP_EncryptFinal_ex(encrypt_, out.Data() + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(encrypt_, EVP_CTRL_AEAD_GET_TAG, kTagLen, out.Data() + kTextLen) != 1)
      throw Napi::Error::New(env, "OpenSSL failed to seal");
    return env.Undefined();
  }

  const EVP_CIPHER *cipher_ = nullptr;
  uint8_t key_[32] = {};
  EVP_CIPHER_CTX *decrypt_ = nullptr;
  EVP_CIPHER_CTX *encrypt_ = nullptr;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("AeadContext", AeadContext::Define(env));
  exports.Set("openssl", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

}  // namespace

NODE_API_MODULE(pdm_aead, Init)
