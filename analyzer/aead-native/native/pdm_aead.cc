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
//   new AeadContext(aeadId, key)      aeadId 1 (AES-128-GCM, 16-byte key) or 3
//                                     (ChaCha20-Poly1305, 32-byte key); the
//                                     caller checks the key's length first
//   ctx.open(bytes, at, kri, out)     the 36-byte option at bytes[at] (Type
//   first):
//                                     nonce from kri and its Random Number + F,
//                                     AAD its first 6 bytes, then 14 bytes of
//                                     ciphertext and the 16-byte tag. Writes
//                                     the 14 opened bytes to out and returns 1,
//                                     or returns 0 (out zeroed) when the tag
//                                     does not verify, -1 when the option is
//                                     not in bytes
//   ctx.openAt(at, kri)               the same on the per-packet path: the
//   option lies
//                                     in the buffer last given to setInput, the
//                                     opened bytes go to the one given to
//                                     setOutput (passing two typed arrays costs
//                                     more than the open itself)
//   ctx.seal(nonce, aad, text, out)   12, 6 and 14 bytes in; ciphertext || tag
//   (30) out setInput(bytes), setOutput(out)   those buffers, per thread
//   (Node-API instance data)
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
                       {InstanceMethod("open", &AeadContext::Open),
                        InstanceMethod("openAt", &AeadContext::OpenAt),
                        InstanceMethod("seal", &AeadContext::Seal)});
  }

  explicit AeadContext(const Napi::CallbackInfo &info)
      : Napi::ObjectWrap<AeadContext>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "AeadContext(aeadId, key)");
    size_t keyLen = 0;
    aead_ = info[0].As<Napi::Number>().Int32Value();
    cipher_ = CipherOf(aead_, &keyLen);
    if (!cipher_)
      throw Napi::RangeError::New(
          env, "AEAD id must be 1 (AES-128-GCM) or 3 (ChaCha20-Poly1305)");
    auto key = info[1].As<Napi::Uint8Array>();
    if (key.ByteLength() != keyLen)
      throw Napi::RangeError::New(env, "key of the wrong length for this AEAD");
    std::memcpy(key_, key.Data(), keyLen);
    bool made;
    if (aead_ == 1) {
      blocks_.ecb = EVP_CIPHER_CTX_new();
      made = blocks_.ecb &&
             EVP_EncryptInit_ex(blocks_.ecb, EVP_aes_128_ecb(), nullptr, key_,
                                nullptr) == 1 &&
             EVP_CIPHER_CTX_set_padding(blocks_.ecb, 0) == 1 &&
             (gcm_ = CRYPTO_gcm128_new(&blocks_, ServeBlock)) !=
                 nullptr; // computes H through ServeBlock
    } else {
      made = (decrypt_ = NewContext(false)) != nullptr;
    }
    if (!made)
      throw Napi::Error::New(env, "OpenSSL refused the AEAD context");
    Napi::MemoryManagement::AdjustExternalMemory(env, kExternalBytes);
  }

  void Finalize(Napi::Env env) override {
    Napi::MemoryManagement::AdjustExternalMemory(env, -kExternalBytes);
  }

  ~AeadContext() override {
    if (gcm_)
      CRYPTO_gcm128_release(gcm_); // (cleanses the GHASH key)
    EVP_CIPHER_CTX_free(blocks_.ecb);
    EVP_CIPHER_CTX_free(decrypt_);
    EVP_CIPHER_CTX_free(encrypt_);
    OPENSSL_cleanse(&blocks_, sizeof blocks_);
    OPENSSL_cleanse(key_, sizeof key_);
  }

private:
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

  Napi::Value Open(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto bytes = info[0].As<Napi::Uint8Array>();
    const int64_t at = info[1].As<Napi::Number>().Int64Value();
    const uint32_t kri = info[2].As<Napi::Number>().Uint32Value();
    auto out = info[3].As<Napi::Uint8Array>();
    if (at < 0 || static_cast<uint64_t>(at) + kOptionLen > bytes.ByteLength() ||
        out.ByteLength() < kTextLen)
      return Napi::Number::New(env, -1);
    return Napi::Number::New(env,
                             OpenOption(bytes.Data() + at, kri, out.Data()));
  }

  Napi::Value OpenAt(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Buffers *b = env.GetInstanceData<Buffers>();
    const int64_t at = info[0].As<Napi::Number>().Int64Value();
    const uint32_t kri = info[1].As<Napi::Number>().Uint32Value();
    if (!b || !b->in || !b->out || at < 0 ||
        static_cast<uint64_t>(at) + kOptionLen > b->inLength)
      return Napi::Number::New(env, -1);
    return Napi::Number::New(env, OpenOption(b->in + at, kri, b->out));
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
    if (!encrypt_ && !(encrypt_ = NewContext(true)))
      throw Napi::Error::New(env, "OpenSSL refused the AEAD context");
    int len = 0;
    if (EVP_EncryptInit_ex(encrypt_, nullptr, nullptr, nullptr, nonce.Data()) !=
            1 ||
        EVP_EncryptUpdate(encrypt_, nullptr, &len, aad.Data(), kAadLen) != 1 ||
        EVP_EncryptUpdate(encrypt_, out.Data(), &len, text.Data(), kTextLen) !=
            1 ||
        EVP_EncryptFinal_ex(encrypt_, out.Data() + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(encrypt_, EVP_CTRL_AEAD_GET_TAG, kTagLen,
                            out.Data() + kTextLen) != 1)
      throw Napi::Error::New(env, "OpenSSL failed to seal");
    return env.Undefined();
  }

  int aead_ = 0;
  const EVP_CIPHER *cipher_ = nullptr;
  uint8_t key_[32] = {};
  // AES-128-GCM's open: GCM mode over the blocks of a kept ECB context.
  PrecomputedBlocks blocks_;
  GCM128_CONTEXT *gcm_ = nullptr;
  // ChaCha20-Poly1305's open, and both AEADs' seal: EVP.
  EVP_CIPHER_CTX *decrypt_ = nullptr;
  EVP_CIPHER_CTX *encrypt_ = nullptr;
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
