// Optimizers: LibTorch's own SGD, Adam and AdamW, LARS written here, and gradient clipping. Each step is one native
// call over every parameter; options cross as plain objects with the TypeScript names, state with PyTorch's keys.
#include "common.h"

#include <torch/types.h>  // clip_grad.h uses torch::Tensor without including it
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <sstream>
#include <type_traits>

namespace mmssl {
namespace {

using torch::optim::OptimizerOptions;
using torch::optim::OptimizerParamGroup;
using torch::optim::OptimizerParamState;

// ---- LARS (You et al. 2017), in SimCLR's form
// ------------------------------------------------------------------------ g = grad + weight_decay * p; trust = eta *
// ||p|| / (||g|| + eps) when both norms are positive, else 1; v = momentum * v + lr * trust * g; p -= v (or, with
// nesterov, p -= momentum * v + lr * trust * g). A group with `exclude` set skips both the weight decay and the
// adaptation (SimCLR's rule for biases and BN).

struct LarsOptions : public torch::optim::OptimizerCloneableOptions<LarsOptions> {
  explicit LarsOptions(double lr) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 0;
  TORCH_ARG(double, trust_coefficient) = 0.001;
  TORCH_ARG(double, eps) = 0;
  TORCH_ARG(bool, nesterov) = false;
  TORCH_ARG(bool, exclude) = false;

 public:
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

struct LarsParamState : public torch::optim::OptimizerCloneableParamState<LarsParamState> {
  TORCH_ARG(at::Tensor, momentum_buffer);
};

class Lars : public torch::optim::Optimizer {
 public:
  Lars(std::vector<OptimizerParamGroup> groups, LarsOptions defaults)
      : Optimizer(std::move(groups), std::make_unique<LarsOptions>(defaults)) {}

  at::Tensor step(LossClosure closure = nullptr) override;
};

// The key LibTorch files a parameter's state under: the TensorImpl's address, printed in 1.x, raw from 2.x on. The
// overload is chosen by the map's key type, so the code follows whichever LibTorch it is compiled against.
inline std::string stateKeyAs(const at::Tensor& p, std::string*) {
  std::ostringstream key;
  key << p.unsafeGetTensorImpl();
  return key.str();
}
inline void* stateKeyAs(const at::Tensor& p, void**) { return p.unsafeGetTensorImpl(); }

template <typename Map>
auto stateKey(const at::Tensor& p) {
  return stateKeyAs(p, static_cast<typename Map::key_type*>(nullptr));
}

using StateMap = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;

OptimizerParamState* findState(torch::optim::Optimizer& opt, const at::Tensor& p) {
  auto it = opt.state().find(stateKey<StateMap>(p));
  return it == opt.state().end() ? nullptr : it->second.get();
}

// lr * trust * (grad + weight_decay * p), the trust ratio computed on the device (no host synchronisation).
at::Tensor adaptedUpdate(const at::Tensor& p, const LarsOptions& o) {
  at::Tensor g = o.weight_decay() != 0 ? p.grad().add(p, o.weight_decay()) : p.grad();
  at::Tensor wNorm = p.norm(), gNorm = g.norm();
  at::Tensor trust = at::where(wNorm.gt(0) & gNorm.gt(0), wNorm.mul(o.trust_coefficient()).div(gNorm.add(o.eps())),
                               at::ones_like(wNorm));
  return g.mul(trust.mul(o.lr()));
}

at::Tensor Lars::step(LossClosure closure) {
  at::NoGradGuard noGrad;
  for (auto& group : param_groups_) {
    auto& o = static_cast<LarsOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      at::Tensor update = o.exclude() ? p.grad().mul(o.lr()) : adaptedUpdate(p, o);
      auto key = stateKey<StateMap>(p);
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto state = std::make_unique<LarsParamState>();
        state->momentum_buffer(at::zeros_like(p));
        it = state_.emplace(key, std::move(state)).first;
      }
      at::Tensor& v = static_cast<LarsParamState&>(*it->second).momentum_buffer();
      v.mul_(o.momentum()).add_(update);
      p.sub_(o.nesterov() ? v.mul(o.momentum()).add_(update) : v);
    }
  }
  return {};
}

// ---- options and state as JS objects ----------------------------------------------------------------------------

std::tuple<double, double> betas(const Options& o) {
  Napi::Value v = o.get("betas");
  Napi::Array b = v.IsArray() ? v.As<Napi::Array>() : Napi::Array();
  if (!v.IsArray() || b.Length() != 2 || !b.Get(0u).IsNumber() || !b.Get(1u).IsNumber())
    o.wrongType("betas", "[beta1, beta2]");
  return {b.Get(0u).As<Napi::Number>().DoubleValue(), b.Get(1u).As<Napi::Number>().DoubleValue()};
}

at::Tensor stateTensor(const Args& a, const Options& o, const char* key, const at::Tensor& param) {
  const at::Tensor* t = findTensor(a.env(), o.get(key));
  if (!t) o.wrongType(key, "a live tensor");
  TORCH_CHECK(t->sizes() == param.sizes(), "state '", key, "' has shape ", shapeString(t->sizes()),
              " but its parameter has shape ", shapeString(param.sizes()));
  // As PyTorch's load_state_dict: the optimizer owns a copy, on the parameter's device and dtype.
  return t->to(param.options(), /*non_blocking=*/false, /*copy=*/true);
}

// What each optimizer kind needs: its options from JS, its construction, and its per-parameter state both ways.
struct Kind {
  const char* name;
  std::unique_ptr<OptimizerOptions> (*options)(const Options&);
  std::unique_ptr<torch::optim::Optimizer> (*create)(std::vector<OptimizerParamGroup>, const OptimizerOptions&);
  Napi::Value (*readState)(const Args&, OptimizerParamState&);
  std::unique_ptr<OptimizerParamState> (*writeState)(const Args&, const Options&, const at::Tensor&);
};

template <typename AdamOptions>
std::unique_ptr<OptimizerOptions> adamOptions(const Options& o) {
  auto opts = std::make_unique<AdamOptions>(o.number("lr"));
  opts->betas(betas(o)).eps(o.number("eps")).weight_decay(o.number("weightDecay")).amsgrad(o.flag("amsgrad"));
  return opts;
}

// A parameter's state as {tensors: {name: handle}, numbers: {name: value}}, so JS never guesses which is which.
struct StateOut {
  explicit StateOut(const Args& a) : a(a), tensors(Napi::Object::New(a.env())), numbers(Napi::Object::New(a.env())) {}
  StateOut& tensor(const char* name, const at::Tensor& t) {
    if (t.defined()) tensors.Set(name, a.wrap(t));
    return *this;
  }
  Napi::Value value() const {
    Napi::Object out = Napi::Object::New(a.env());
    out.Set("tensors", tensors);
    out.Set("numbers", numbers);
    return out;
  }
  const Args& a;
  Napi::Object tensors, numbers;
};

template <typename State>
Napi::Value readAdamState(const Args& a, OptimizerParamState& s) {
  auto& state = static_cast<State&>(s);
  StateOut out(a);
  out.numbers.Set("step", static_cast<double>(state.step()));
  return out.tensor("exp_avg", state.exp_avg())
      .tensor("exp_avg_sq", state.exp_avg_sq())
      .tensor("max_exp_avg_sq", state.max_exp_avg_sq())
      .value();
}

template <typename State>
std::unique_ptr<OptimizerParamState> writeAdamState(const Args& a, const Options& o, const at::Tensor& p) {
  auto state = std::make_unique<State>();
  state->step(static_cast<int64_t>(o.number("step")));
  state->exp_avg(stateTensor(a, o, "exp_avg", p)).exp_avg_sq(stateTensor(a, o, "exp_avg_sq", p));
  if (o.has("max_exp_avg_sq")) state->max_exp_avg_sq(stateTensor(a, o, "max_exp_avg_sq", p));
  return state;
}

// SGD and LARS keep one momentum buffer per parameter (absent for SGD without momentum).
template <typename State>
Napi::Value readMomentumState(const Args& a, OptimizerParamState& s) {
  return StateOut(a).tensor("momentum_buffer", static_cast<State&>(s).momentum_buffer()).value();
}

template <typename State>
std::unique_ptr<OptimizerParamState> writeMomentumState(const Args& a, const Options& o, const at::Tensor& p) {
  auto state = std::make_unique<State>();
  state->momentum_buffer(stateTensor(a, o, "momentum_buffer", p));
  return state;
}

template <typename Optimizer, typename Options>
std::unique_ptr<torch::optim::Optimizer> create(std::vector<OptimizerParamGroup> groups, const OptimizerOptions& d) {
  return std::make_unique<Optimizer>(std::move(groups), static_cast<const Options&>(d));
}

const Kind kKinds[] = {
    {"sgd",
     [](const Options& o) -> std::unique_ptr<OptimizerOptions> {
       auto opts = std::make_unique<torch::optim::SGDOptions>(o.number("lr"));
       opts->momentum(o.number("momentum")).dampening(o.number("dampening"));
       opts->weight_decay(o.number("weightDecay")).nesterov(o.flag("nesterov"));
       return opts;
     },
     create<torch::optim::SGD, torch::optim::SGDOptions>, readMomentumState<torch::optim::SGDParamState>,
     writeMomentumState<torch::optim::SGDParamState>},
    {"adam", adamOptions<torch::optim::AdamOptions>, create<torch::optim::Adam, torch::optim::AdamOptions>,
     readAdamState<torch::optim::AdamParamState>, writeAdamState<torch::optim::AdamParamState>},
    {"adamw", adamOptions<torch::optim::AdamWOptions>, create<torch::optim::AdamW, torch::optim::AdamWOptions>,
     readAdamState<torch::optim::AdamWParamState>, writeAdamState<torch::optim::AdamWParamState>},
    {"lars",
     [](const Options& o) -> std::unique_ptr<OptimizerOptions> {
       auto opts = std::make_unique<LarsOptions>(o.number("lr"));
       opts->momentum(o.number("momentum")).weight_decay(o.number("weightDecay"));
       opts->trust_coefficient(o.number("trustCoefficient")).eps(o.number("eps"));
       opts->nesterov(o.flag("nesterov")).exclude(o.flag("exclude"));
       return opts;
     },
     create<Lars, LarsOptions>, readMomentumState<LarsParamState>, writeMomentumState<LarsParamState>},
};

// ---- the optimizer object JS holds --------------------------------------------------------------------------------

// What a handle of ObjectKind::Optimizer owns: freed by optimizerDispose, or with the environment.
struct Held {
  const Kind* kind;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

Held& held(const Args& a) { return a.object<Held>(0, ObjectKind::Optimizer); }

// Argument i as an array of objects, each an Options.
std::vector<Options> optionsList(const Args& a, size_t i, const char* what) {
  if (!a[i].IsArray()) a.typeError(i, what);
  Napi::Array list = a[i].As<Napi::Array>();
  std::vector<Options> out;
  for (uint32_t k = 0; k < list.Length(); k++) {
    if (!list.Get(k).IsObject()) a.typeError(i, what);
    out.emplace_back(a, i, list.Get(k).As<Napi::Object>());
  }
  return out;
}

// optimizerCreate(kind, [{params, options}]): every group's options are complete (TS merged the defaults in).
Napi::Value create(Args& a) {
  std::string name = a.string(0);
  const Kind* kind = nullptr;
  for (const Kind& k : kKinds)
    if (name == k.name) kind = &k;
  if (!kind) a.typeError(0, "'sgd', 'adam', 'adamw' or 'lars'");
  std::vector<OptimizerParamGroup> groups;
  for (const Options& g : optionsList(a, 1, "a non-empty array of parameter groups {params, options}")) {
    Napi::Value params = g.get("params");
    if (!params.IsArray()) g.wrongType("params", "an array of tensors");
    std::vector<at::Tensor> tensors;
    for (uint32_t j = 0; j < params.As<Napi::Array>().Length(); j++) {
      const at::Tensor* t = findTensor(a.env(), params.As<Napi::Array>().Get(j));
      if (!t) g.wrongType("params", "an array of live tensors");
      tensors.push_back(*t);
    }
    if (!g.get("options").IsObject()) g.wrongType("options", "an object");
    groups.emplace_back(std::move(tensors), kind->options(Options(a, 1, g.get("options").As<Napi::Object>())));
  }
  if (groups.empty()) a.typeError(1, "a non-empty array of parameter groups {params, options}");
  std::unique_ptr<OptimizerOptions> defaults = groups.front().options().clone();
  return wrapObject(a.env(), ObjectKind::Optimizer,
                    std::make_shared<Held>(Held{kind, kind->create(std::move(groups), *defaults)}));
}

// optimizerStep(optimizer, [options per group]): applies the groups' current options (a scheduler may have changed
// them), then updates every parameter.
Napi::Value step(Args& a) {
  Held& h = held(a);
  auto& groups = h.optimizer->param_groups();
  std::vector<Options> options = optionsList(a, 1, "one options object per parameter group");
  if (options.size() != groups.size()) a.typeError(1, "one options object per parameter group");
  for (size_t i = 0; i < options.size(); i++) groups[i].set_options(h.kind->options(options[i]));
  h.optimizer->step();
  return a.undefined();
}

// optimizerState(optimizer): per parameter, in group order, its state (PyTorch's keys, see StateOut) or null.
Napi::Value state(Args& a) {
  Held& h = held(a);
  Napi::Array out = Napi::Array::New(a.env());
  uint32_t index = 0;
  for (auto& group : h.optimizer->param_groups()) {
    for (auto& p : group.params()) {
      OptimizerParamState* s = findState(*h.optimizer, p);
      out.Set(index++, s ? h.kind->readState(a, *s) : a.env().Null());
    }
  }
  return out;
}

// optimizerLoadState(optimizer, states): replaces every parameter's state (null clears it). All states are built
// before any is installed, so a bad one leaves the optimizer as it was.
Napi::Value loadState(Args& a) {
  Held& h = held(a);
  if (!a[1].IsArray()) a.typeError(1, "an array of per-parameter states");
  Napi::Array list = a[1].As<Napi::Array>();
  std::vector<std::pair<at::Tensor, std::unique_ptr<OptimizerParamState>>> states;
  for (auto& group : h.optimizer->param_groups()) {
    for (auto& p : group.params()) {
      uint32_t i = static_cast<uint32_t>(states.size());
      if (i >= list.Length()) a.typeError(1, "one state (or null) per parameter");
      Napi::Value v = list.Get(i);
      if (!v.IsNull() && !v.IsObject()) a.typeError(1, "per-parameter states: objects or null");
      states.emplace_back(p, v.IsNull() ? nullptr : h.kind->writeState(a, Options(a, 1, v.As<Napi::Object>()), p));
    }
  }
  if (states.size() != list.Length()) a.typeError(1, "one state (or null) per parameter");
  h.optimizer->state().clear();
  for (auto& [p, s] : states) {
    if (s) h.optimizer->state()[stateKey<StateMap>(p)] = std::move(s);
  }
  return a.undefined();
}

Napi::Value dispose(Args& a) {
  held(a);
  envState(a.env()).objects.erase(a.handle(0));
  return a.undefined();
}

// clip_grad_norm_: scales every gradient so that their joint norm is at most maxNorm; returns the norm before.
Napi::Value clipGradNorm(Args& a) {
  return a.value(torch::nn::utils::clip_grad_norm_(a.tensors(0), a.number(1), a.number(2), a.boolean(3)));
}

const Export kExports[] = {
    {"optimizerCreate", create},       {"optimizerStep", step},       {"optimizerState", state},
    {"optimizerLoadState", loadState}, {"optimizerDispose", dispose}, {"clipGradNorm", clipGradNorm},
};

}  // namespace

void initOptim(Napi::Env env, Napi::Object exports) { defineExports(env, exports, kExports); }

}  // namespace mmssl
