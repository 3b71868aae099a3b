// Data parallelism on LibTorch's c10d: rendezvous through its TCPStore or FileStore, collectives through its Gloo
// process group. Bound thin: a group is a JS External; collectives act on tensors in place; the gradient all-reduce is
// one call per step (bucketed, every bucket in flight before the first wait); all-gather and all-reduce also come as
// autograd functions, for a loss over every rank's embeddings and for synchronised BatchNorm.
//
// Differentiable collectives follow DDP's convention, where every rank's objective is its own loss and the parameter
// gradients are averaged: the backward of y = gather(x) (or y = sum over ranks of x) is the sum over ranks of dL_r/dy,
// restricted to this rank's rows, so the averaged gradients are those of the mean of the ranks' losses.
//
// Gloo's headers come from libgloo-dev; without them every entry point says so instead of failing to build. With a
// CUDA LibTorch, NCCL's group (native/cuda/nccl.cc) serves the same entry points.
#include "common.h"

#if __has_include(<gloo/config.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#define MMSSL_WITH_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // ProcessGroupGloo.hpp declares nothing without it
#endif
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "distributed.h"
#endif

#include <atomic>
#include <chrono>
#include <unordered_map>

namespace mmssl {
namespace {

#ifdef MMSSL_WITH_GLOO

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Group = c10::intrusive_ptr<CollectiveGroup>;

// Groups by id, for the backward of the autograd functions (autograd's saved data holds plain values).
std::mutex registryMutex;
std::unordered_map<int64_t, Group> registry;
int64_t nextId = 1;

Group groupById(int64_t id) {
  std::lock_guard<std::mutex> lock(registryMutex);
  auto found = registry.find(id);
  if (found == registry.end())
    throw JsError(ErrorKind::Distributed, "the process group was destroyed before the backward pass");
  return found->second;
}

// What a handle of ObjectKind::ProcessGroup owns: the group's place in the registry, given up by distDestroy or with
// the environment.
struct Held {
  int64_t id = 0;
  ~Held() {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry.erase(id);
  }
};

Group group(const Args& a, size_t i) {
  int64_t id = a.object<Held>(i, ObjectKind::ProcessGroup).id;
  std::lock_guard<std::mutex> lock(registryMutex);
  auto found = registry.find(id);
  if (found == registry.end()) a.fail(ErrorKind::Distributed, "the process group was destroyed");
  return found->second;
}

// `f()`, any failure in it (a rank died, the timeout passed, a broken connection) made a DistributedError of `op`.
template <typename F>
auto asDistributed(const char* op, F f) {
  try {
    return f();
  } catch (const JsError&) {
    throw;
  } catch (const c10::Error& e) {
    throw JsError(ErrorKind::Distributed, std::string(op) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw JsError(ErrorKind::Distributed, std::string(op) + ": " + e.what());
  }
}

// Every export of this file runs through here: a collective's failure is a DistributedError, not a TorchError.
template <NativeFn fn>
Napi::Value guarded(Args& a) {
  return asDistributed(a.op(), [&] { return fn(a); });
}

// Time this process has spent waiting for collectives: the communication share of a step that did not overlap.
std::atomic<int64_t> waitNanoseconds{0};

void wait(const c10::intrusive_ptr<c10d::Work>& work) {
  auto start = std::chrono::steady_clock::now();
  asDistributed("collective", [&] { return work->wait(); });  // (in a backward pass too, where no Args exist)
  waitNanoseconds +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
}

at::Tensor allGather(const Group& g, const at::Tensor& x) {
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < g->getSize(); ++r) outputs[0].push_back(at::empty_like(x, at::MemoryFormat::Contiguous));
  std::vector<at::Tensor> inputs{x.contiguous()};
  wait(g->allgather(outputs, inputs));
  return at::cat(outputs[0]);
}

at::Tensor allReduceSum(const Group& g, const at::Tensor& x) {
  std::vector<at::Tensor> tensors{x.contiguous().clone()};
  wait(g->allreduce(tensors, c10d::AllreduceOptions{}));
  return tensors[0];
}

// y = the ranks' x stacked along dim 0 (equal shapes); dL/dx = this rank's rows of the ranks' summed dL/dy.
class AllGather : public torch::autograd::Function<AllGather> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t id) {
    ctx->saved_data["id"] = id;
    ctx->saved_data["rows"] = x.size(0);
    return allGather(groupById(id), x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Group g = groupById(ctx->saved_data["id"].toInt());
    int64_t rows = ctx->saved_data["rows"].toInt();
    return {allReduceSum(g, grads[0]).narrow(0, g->getRank() * rows, rows), at::Tensor()};
  }
};

// y = the sum over ranks of x; dL/dx = the sum over ranks of dL/dy.
class AllReduceSum : public torch::autograd::Function<AllReduceSum> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t id) {
    ctx->saved_data["id"] = id;
    return allReduceSum(groupById(id), x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {allReduceSum(groupById(ctx->saved_data["id"].toInt()), grads[0]), at::Tensor()};
  }
};

c10d::ReduceOp reduceOp(const Args& a, size_t i) {
  std::string name = a.string(i);
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "product") return c10d::ReduceOp::PRODUCT;
  if (name == "min") return c10d::ReduceOp::MIN;
  if (name == "max") return c10d::ReduceOp::MAX;
  a.typeError(i, "'sum', 'product', 'min' or 'max'");
}

// ---- rendezvous: off the JS thread, it waits for every rank ------------------------------------------------------

// LibTorch 2.4 made TCPStore's libuv backend the default, and a LibTorch built without libuv (Debian's) then refuses
// to start a store at all: ask for the classic backend, which every version has, where the option exists.
template <typename Options>
auto classicTcpStore(Options& options, int) -> decltype(options.useLibUV = false, void()) {
  options.useLibUV = false;
}
template <typename Options>
void classicTcpStore(Options&, long) {}

struct InitOptions {
  std::string backend = "gloo", host, file, interface;
  uint16_t port = 29500;
  int rank = 0, size = 1, threads = 2;
  std::chrono::milliseconds timeout{1800000};
};

// The group InitOptions describe: rendezvous (which waits for every rank), then the backend.
Group createGroup(const InitOptions& o) {
  c10::intrusive_ptr<c10d::Store> store;
  if (!o.file.empty()) {
    store = c10::make_intrusive<c10d::FileStore>(o.file, o.size);
  } else {
    c10d::TCPStoreOptions tcp;
    tcp.port = o.port;
    tcp.isServer = o.rank == 0;
    tcp.numWorkers = o.size;
    tcp.timeout = o.timeout;
    classicTcpStore(tcp, 0);
    store = c10::make_intrusive<c10d::TCPStore>(o.host, tcp);
  }
  store->setTimeout(o.timeout);
  if (o.backend == "nccl") {
#ifdef MMSSL_WITH_CUDA
    return createNcclGroup(store, o.rank, o.size, o.timeout);
#else
    throw JsError(ErrorKind::Distributed,
                  "distInit: NCCL needs a LibTorch with CUDA; this addon was built against a CPU one (use gloo)");
#endif
  }
  auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
  options->devices.push_back(o.interface.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                                 : c10d::ProcessGroupGloo::createDeviceForInterface(o.interface));
  options->threads = o.threads;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.size, options);
}

// distInit({backend, host, port, file, interface, rank, size, threads, timeoutMs}) -> Promise<group>, off the JS
// thread (rendezvous waits for every rank). TypeScript resolves every option; file and interface may be absent.
Napi::Value init(Args& a) {
  Options o(a, 0);
  InitOptions options;
  options.backend = o.text("backend");
  options.host = o.text("host");
  options.file = o.text("file", "");
  options.interface = o.text("interface", "");
  options.port = static_cast<uint16_t>(o.number("port"));
  options.rank = static_cast<int>(o.number("rank"));
  options.size = static_cast<int>(o.number("size"));
  options.threads = static_cast<int>(o.number("threads"));
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(o.number("timeoutMs")));
  return PromiseWorker::start(a, [options]() -> PromiseWorker::Completion {
    Group created = asDistributed("distInit", [&] { return createGroup(options); });
    return [created](Napi::Env env) -> Napi::Value {
      auto held = std::make_shared<Held>();
      std::lock_guard<std::mutex> lock(registryMutex);
      held->id = nextId++;
      registry.emplace(held->id, created);
      return wrapObject(env, ObjectKind::ProcessGroup, held);
    };
  });
}

// distAllReduceGradients(group, params, bucketBytes): every parameter's gradient averaged over the ranks, in buckets
// of about bucketBytes (per dtype) that are all in flight before the first wait. A parameter without a gradient (one
// the loss does not reach, identically on every rank) keeps none, as in one process.
Napi::Value allReduceGradients(Args& a) {
  Group g = group(a, 0);
  std::vector<at::Tensor> params = a.tensors(1);
  int64_t bucketBytes = a.int64(2);
  std::vector<at::Tensor> grads;
  for (at::Tensor& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  struct Bucket {
    std::vector<size_t> members;
    std::vector<at::Tensor> flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::unordered_map<int, size_t> open;  // dtype -> its bucket being filled
  std::unordered_map<int, int64_t> filled;
  for (size_t i = 0; i < grads.size(); ++i) {
    int type = static_cast<int>(grads[i].scalar_type());
    if (!open.count(type) || filled[type] + grads[i].nbytes() > static_cast<size_t>(bucketBytes)) {
      open[type] = buckets.size();
      filled[type] = 0;
      buckets.emplace_back();
    }
    buckets[open[type]].members.push_back(i);
    filled[type] += grads[i].nbytes();
  }
  for (Bucket& b : buckets) {
    std::vector<at::Tensor> parts;
    for (size_t i : b.members) parts.push_back(grads[i].reshape({-1}));
    b.flat = {at::cat(parts)};
    b.work = g->allreduce(b.flat, c10d::AllreduceOptions{});
  }
  double scale = 1.0 / g->getSize();
  for (Bucket& b : buckets) {
    wait(b.work);
    b.flat[0].mul_(scale);
    int64_t at = 0;
    for (size_t i : b.members) {
      int64_t n = grads[i].numel();
      grads[i].copy_(b.flat[0].narrow(0, at, n).view(grads[i].sizes()));
      at += n;
    }
  }
  return a.undefined();
}

// A promise settled off the JS thread once `works` are done (in place: a dense copy, for a tensor that was not, is
// copied back there, outside autograd as torch.distributed's in-place collectives are). The collectives were
// launched on the JS thread, so every rank launches them in its program's order, as Gloo and NCCL need.
Napi::Value settleAsync(const Args& a, const Group& g, std::vector<c10::intrusive_ptr<c10d::Work>> works,
                        std::vector<at::Tensor> tensors = {}, std::vector<std::vector<at::Tensor>> dense = {}) {
  return PromiseWorker::start(a, [g, works, tensors, dense]() -> PromiseWorker::Completion {
    at::NoGradGuard noGrad;
    for (size_t i = 0; i < works.size(); ++i) {
      wait(works[i]);
      if (i < tensors.size() && !dense[i][0].is_same(tensors[i])) tensors[i].copy_(dense[i][0]);
    }
    return [](Napi::Env env) { return env.Undefined(); };
  });
}

// Launches `collective` on every tensor at once, in place through a dense copy for a tensor that is not
// (channels-last parameters); the promise settles when all are done.
template <typename Launch>
Napi::Value inPlace(const Args& a, const Group& g, const std::vector<at::Tensor>& tensors, Launch launch) {
  std::vector<std::vector<at::Tensor>> dense;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const at::Tensor& t : tensors) {
    dense.push_back({t.is_contiguous() ? t : t.contiguous()});
    works.push_back(launch(dense.back()));
  }
  return settleAsync(a, g, works, tensors, dense);
}

// distAllReduce(group, tensors, op) -> Promise: in place, every tensor.
Napi::Value allReduce(Args& a) {
  Group g = group(a, 0);
  c10d::AllreduceOptions options;
  options.reduceOp = reduceOp(a, 2);
  return inPlace(a, g, a.tensors(1), [&](std::vector<at::Tensor>& one) { return g->allreduce(one, options); });
}

// distBroadcast(group, tensors, root) -> Promise: in place, every tensor takes root's values.
Napi::Value broadcast(Args& a) {
  Group g = group(a, 0);
  c10d::BroadcastOptions options;
  options.rootRank = static_cast<int64_t>(a.int64(2));
  if (options.rootRank < 0 || options.rootRank >= g->getSize()) a.typeError(2, "a rank of the group");
  return inPlace(a, g, a.tensors(1), [&](std::vector<at::Tensor>& one) { return g->broadcast(one, options); });
}

// The registry id of the group at argument i (autograd's saved data holds plain values).
int64_t groupId(const Args& a, size_t i) {
  group(a, i);  // a destroyed group is refused here, not in the backward pass
  return a.object<Held>(i, ObjectKind::ProcessGroup).id;
}

Napi::Value allGatherOp(Args& a) { return a.wrap(AllGather::apply(a.tensor(1), groupId(a, 0))); }
Napi::Value allReduceSumOp(Args& a) { return a.wrap(AllReduceSum::apply(a.tensor(1), groupId(a, 0))); }
// distBarrier(group) -> Promise: settles when every rank has arrived.
Napi::Value barrier(Args& a) {
  Group g = group(a, 0);
  return settleAsync(a, g, {g->barrier()});
}

Napi::Value destroy(Args& a) {
  a.object<Held>(0, ObjectKind::ProcessGroup);
  envState(a.env()).objects.erase(a.handle(0));
  return a.undefined();
}

const Export kExports[] = {
    {"distAvailable", [](Args& a) -> Napi::Value { return a.value(true); }},
    {"distInit", guarded<init>},
    {"distAllReduceGradients", guarded<allReduceGradients>},
    {"distAllReduce", guarded<allReduce>},
    {"distBroadcast", guarded<broadcast>},
    {"distAllGather", guarded<allGatherOp>},
    {"distAllReduceSum", guarded<allReduceSumOp>},
    {"distBarrier", guarded<barrier>},
    {"distDestroy", destroy},
    {"distWaitSeconds", [](Args& a) -> Napi::Value { return a.value(waitNanoseconds.load() * 1e-9); }},
};

#else  // built without Gloo's headers

const Export kExports[] = {
    {"distAvailable", [](Args& a) -> Napi::Value { return a.value(false); }},
};

#endif

}  // namespace

void initDistributed(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
