// pdm_bpf.cc: a thin Node-API binding over the system libbpf (Debian libbpf 1.1).
//
// It does only what the agent cannot do from JavaScript: open and load a BPF object,
// attach programs with tc clsact (bpf_tc_*), pin, map operations, BPF_PROG_TEST_RUN,
// and ring-buffer consumption driven by libuv (uv_poll on the ring buffer's epoll fd,
// so records arrive on the main thread without a polling loop or a second thread).
// Every failure throws an Error with `errno` and `syscall` set; probes/bpf.ts turns
// those into one-sentence BpfErrors. No policy lives here.

#include <napi.h>
#include <uv.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

// libbpf's messages (verifier log included) for the operation in progress.
std::string g_log;

int CaptureLog(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  // One message can be the whole verifier log, whose end says what failed: size it
  // first instead of cutting it to a fixed buffer.
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string line(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(line.data(), line.size(), fmt, args);
  line.resize(static_cast<size_t>(n));
  g_log += line;
  if (g_log.size() > (1u << 20)) g_log.erase(0, g_log.size() - (1u << 20));
  return 0;
}

Napi::Error ErrnoError(Napi::Env env, const std::string& syscall, int err, const std::string& detail = "") {
  if (err < 0) err = -err;
  std::string msg = syscall + ": " + strerror(err);
  if (!detail.empty()) msg += "\n" + detail;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

std::map<int, bpf_object*> g_objects;
int g_next_object = 1;

bpf_object* ObjectArg(const Napi::CallbackInfo& info, size_t i) {
  int id = info[i].As<Napi::Number>().Int32Value();
  auto it = g_objects.find(id);
  if (it == g_objects.end()) throw Napi::Error::New(info.Env(), "no such BPF object handle");
  return it->second;
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), libbpf_num_possible_cpus());
}

Napi::Value OpenObject(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  g_log.clear();
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) throw ErrnoError(info.Env(), "bpf_object__open_file(" + path + ")", errno, g_log);
  int id = g_next_object++;
  g_objects[id] = obj;
  return Napi::Number::New(info.Env(), id);
}

// Sets the initial bytes of a global-data map (".rodata": the const volatile config).
Napi::Value SetInitialValue(const Napi::CallbackInfo& info) {
  bpf_object* obj = ObjectArg(info, 0);
  std::string name = info[1].As<Napi::String>();
  Napi::Buffer<uint8_t> data = info[2].As<Napi::Buffer<uint8_t>>();
  bpf_map* map = nullptr;
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    const char* n = bpf_map__name(m);
    size_t nl = strlen(n), want = name.size();
    // libbpf names global-data maps "<object prefix>.rodata"
    if (nl >= want && name == n + (nl - want)) map = m;
  }
  if (!map) throw ErrnoError(info.Env(), "find map " + name, ENOENT);
  if (bpf_map__value_size(map) != data.Length())
    throw Napi::Error::New(info.Env(), name + " is " + std::to_string(bpf_map__value_size(map)) +
                                           " bytes in the object but " + std::to_string(data.Length()) +
                                           " were given: the object and probes/abi.ts disagree");
  int err = bpf_map__set_initial_value(map, data.Data(), data.Length());
  if (err) throw ErrnoError(info.Env(), "bpf_map__set_initial_value(" + name + ")", err);
  return info.Env().Undefined();
}

Napi::Value LoadObject(const Napi::CallbackInfo& info) {
  bpf_object* obj = ObjectArg(info, 0);
  g_log.clear();
  int err = bpf_object__load(obj);
  if (err) throw ErrnoError(info.Env(), "bpf_object__load", err, g_log);
  return info.Env().Undefined();
}

Napi::Value ProgramFd(const Napi::CallbackInfo& info) {
  bpf_object* obj = ObjectArg(info, 0);
  std::string name = info[1].As<Napi::String>();
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) throw ErrnoError(info.Env(), "find program " + name, ENOENT);
  return Napi::Number::New(info.Env(), bpf_program__fd(prog));
}

Napi::Value MapFd(const Napi::CallbackInfo& info) {
  bpf_object* obj = ObjectArg(info, 0);
  std::string name = info[1].As<Napi::String>();
  int fd = bpf_object__find_map_fd_by_name(obj, name.c_str());
  if (fd < 0) throw ErrnoError(info.Env(), "find map " + name, ENOENT);
  return Napi::Number::New(info.Env(), fd);
}

// Closing the object closes its fds; kernel objects live on while pinned or attached.
Napi::Value CloseObject(const Napi::CallbackInfo& info) {
  int id = info[0].As<Napi::Number>().Int32Value();
  auto it = g_objects.find(id);
  if (it != g_objects.end()) {
    bpf_object__close(it->second);
    g_objects.erase(it);
  }
  return info.Env().Undefined();
}

Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string path = info[1].As<Napi::String>();
  if (bpf_obj_pin(fd, path.c_str())) throw ErrnoError(info.Env(), "bpf_obj_pin(" + path + ")", errno);
  return info.Env().Undefined();
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) throw ErrnoError(info.Env(), "bpf_obj_get(" + path + ")", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  bpf_map_info mi{};
  __u32 len = sizeof mi;
  if (bpf_obj_get_info_by_fd(fd, &mi, &len)) throw ErrnoError(info.Env(), "bpf_obj_get_info_by_fd", errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("name", mi.name);
  o.Set("id", mi.id);
  o.Set("type", mi.type);
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  return o;
}

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  bpf_prog_info pi{};
  __u32 len = sizeof pi;
  if (bpf_obj_get_info_by_fd(fd, &pi, &len)) throw ErrnoError(info.Env(), "bpf_obj_get_info_by_fd", errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("name", pi.name);
  o.Set("id", pi.id);
  o.Set("runTimeNs", Napi::Number::New(info.Env(), static_cast<double>(pi.run_time_ns)));
  o.Set("runCount", Napi::Number::New(info.Env(), static_cast<double>(pi.run_cnt)));
  o.Set("instructions", pi.xlated_prog_len / 8);
  o.Set("verifiedInstructions", pi.verified_insns);
  return o;
}

Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  auto value = info[2].As<Napi::Buffer<uint8_t>>();
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data())) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    throw ErrnoError(info.Env(), "bpf_map_lookup_elem", errno);
  }
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  auto value = info[2].As<Napi::Buffer<uint8_t>>();
  __u64 flags = info[3].As<Napi::Number>().Int64Value();
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags))
    throw ErrnoError(info.Env(), "bpf_map_update_elem", errno);
  return info.Env().Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  if (bpf_map_delete_elem(fd, key.Data())) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    throw ErrnoError(info.Env(), "bpf_map_delete_elem", errno);
  }
  return Napi::Boolean::New(info.Env(), true);
}

// next key after `key` (null: the first); false at the end.
Napi::Value MapNextKey(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  const void* key = info[1].IsNull() ? nullptr : info[1].As<Napi::Buffer<uint8_t>>().Data();
  auto next = info[2].As<Napi::Buffer<uint8_t>>();
  if (bpf_map_get_next_key(fd, key, next.Data())) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    throw ErrnoError(info.Env(), "bpf_map_get_next_key", errno);
  }
  return Napi::Boolean::New(info.Env(), true);
}

bpf_tc_attach_point AttachPoint(const Napi::Value& v) {
  return v.As<Napi::Boolean>().Value() ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

// tcAttach(ifindex, ingress, progFd, handle, priority) -> { createdQdisc }
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = AttachPoint(info[1]));
  int err = bpf_tc_hook_create(&hook);
  bool created = err == 0;
  if (err && err != -EEXIST) throw ErrnoError(env, "bpf_tc_hook_create", err);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = info[2].As<Napi::Number>().Int32Value(),
                      .flags = BPF_TC_F_REPLACE, .handle = info[3].As<Napi::Number>().Uint32Value(),
                      .priority = info[4].As<Napi::Number>().Uint32Value());
  err = bpf_tc_attach(&hook, &opts);
  if (err) throw ErrnoError(env, "bpf_tc_attach", err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("createdQdisc", created);
  o.Set("progId", opts.prog_id);
  return o;
}

Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = AttachPoint(info[1]));
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = info[2].As<Napi::Number>().Uint32Value(),
                      .priority = info[3].As<Napi::Number>().Uint32Value());
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) throw ErrnoError(info.Env(), "bpf_tc_detach", err);
  return Napi::Boolean::New(info.Env(), true);
}

// The id of the program attached at (handle, priority), or 0.
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = AttachPoint(info[1]));
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = info[2].As<Napi::Number>().Uint32Value(),
                      .priority = info[3].As<Napi::Number>().Uint32Value());
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return Napi::Number::New(info.Env(), 0);
  if (err) throw ErrnoError(info.Env(), "bpf_tc_query", err);
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// Removes the clsact qdisc (and every filter on it). Only for a qdisc we created.
Napi::Value TcDestroyQdisc(const Napi::CallbackInfo& info) {
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
                      .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err && err != -ENOENT && err != -EINVAL) throw ErrnoError(info.Env(), "bpf_tc_hook_destroy", err);
  return info.Env().Undefined();
}

// progTestRun(progFd, data, repeat, outSize) -> { retval, durationNs, data }
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto in = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> out(info[3].As<Napi::Number>().Uint32Value());
  DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.Data(), .data_out = out.data(),
                      .data_size_in = static_cast<__u32>(in.Length()),
                      .data_size_out = static_cast<__u32>(out.size()),
                      .repeat = static_cast<int>(info[2].As<Napi::Number>().Int32Value()));
  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err) throw ErrnoError(env, "bpf_prog_test_run_opts", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("retval", opts.retval);
  o.Set("durationNs", opts.duration);
  o.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), std::min<size_t>(opts.data_size_out, out.size())));
  return o;
}

// Runs a program that takes a context instead of a packet (BPF_PROG_TYPE_SYSCALL: the
// kernel's sleepable setup calls, e.g. creating a crypto context). The kernel writes
// the context back, so `ctx` holds the program's outputs afterwards.
Napi::Value ProgRunContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto ctx = info[1].As<Napi::Buffer<uint8_t>>();
  DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = ctx.Data(), .ctx_size_in = static_cast<__u32>(ctx.Length()));
  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err) throw ErrnoError(env, "bpf_prog_test_run_opts", errno);
  return Napi::Number::New(env, static_cast<int32_t>(opts.retval));
}

// A ring buffer whose records are delivered to a JS callback in batches: one Buffer
// holding whole records back to back (all of one fixed size, checked here).
class RingBuffer : public Napi::ObjectWrap<RingBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBuffer",
                       {InstanceMethod("close", &RingBuffer::Close), InstanceMethod("consume", &RingBuffer::Consume)});
  }

  RingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBuffer>(info) {
    Napi::Env env = info.Env();
    int map_fd = info[0].As<Napi::Number>().Int32Value();
    record_size_ = info[1].As<Napi::Number>().Uint32Value();
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());
    rb_ = ring_buffer__new(map_fd, &RingBuffer::OnRecord, this, nullptr);
    if (!rb_) throw ErrnoError(env, "ring_buffer__new", errno);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
    uv_poll_start(poll_, UV_READABLE, &RingBuffer::OnReadable);
    Ref();  // alive while polling, whatever JS holds
  }

  ~RingBuffer() { Stop(); }

 private:
  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBuffer*>(ctx);
    if (size != self->record_size_) {
      self->bad_size_++;
      return 0;
    }
    const uint8_t* p = static_cast<const uint8_t*>(data);
    self->batch_.insert(self->batch_.end(), p, p + size);
    return 0;
  }

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<RingBuffer*>(handle->data);
    if (status < 0 || !self->rb_) return;
    Napi::HandleScope scope(self->Env());
    self->Drain();
  }

  // Consumes what is there and hands it to JS. Returns records delivered.
  size_t Drain() {
    ring_buffer__consume(rb_);
    if (batch_.empty() && bad_size_ == 0) return 0;
    size_t n = batch_.size() / record_size_;
    Napi::Env env = Env();
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, batch_.data(), batch_.size());
    batch_.clear();
    uint32_t bad = bad_size_;
    bad_size_ = 0;
    callback_.MakeCallback(env.Global(), {buf, Napi::Number::New(env, n), Napi::Number::New(env, bad)});
    return n;
  }

  Napi::Value Consume(const Napi::CallbackInfo& info) {
    if (!rb_) return Napi::Number::New(info.Env(), 0);
    return Napi::Number::New(info.Env(), static_cast<double>(Drain()));
  }

  void Stop() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (rb_) {
      Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  ring_buffer* rb_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uint32_t record_size_ = 0;
  uint32_t bad_size_ = 0;
  std::vector<uint8_t> batch_;
  Napi::FunctionReference callback_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(CaptureLog);
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus));
  exports.Set("openObject", Napi::Function::New(env, OpenObject));
  exports.Set("setInitialValue", Napi::Function::New(env, SetInitialValue));
  exports.Set("loadObject", Napi::Function::New(env, LoadObject));
  exports.Set("programFd", Napi::Function::New(env, ProgramFd));
  exports.Set("mapFd", Napi::Function::New(env, MapFd));
  exports.Set("closeObject", Napi::Function::New(env, CloseObject));
  exports.Set("objPin", Napi::Function::New(env, ObjPin));
  exports.Set("objGet", Napi::Function::New(env, ObjGet));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey));
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery));
  exports.Set("tcDestroyQdisc", Napi::Function::New(env, TcDestroyQdisc));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun));
  exports.Set("progRunContext", Napi::Function::New(env, ProgRunContext));
  exports.Set("RingBuffer", RingBuffer::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(pdm_bpf, Init)
