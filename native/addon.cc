// Module entry: one Init per concern, once per Node environment (main thread and every worker thread).
#include "common.h"

namespace mmssl {
namespace {

void teardown(Napi::Env, std::shared_ptr<EnvState>* statePtr) {
  releaseAll(**statePtr);
  delete statePtr;
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<std::shared_ptr<EnvState>, teardown>(new std::shared_ptr<EnvState>(std::make_shared<EnvState>()));
  initTensor(env, exports);
  initOps(env, exports);
  initFunctional(env, exports);
  initAutograd(env, exports);
  initRuntime(env, exports);
  initOptim(env, exports);
  initLoss(env, exports);
  initDistributed(env, exports);
  initImage(env, exports);
  initAmp(env, exports);
  initRecords(env, exports);
  initAugment(env, exports);
#ifdef MMSSL_WITH_CUDA
  initCuda(env, exports);
  initCudaStreams(env, exports);
#endif
  return exports;
}

}  // namespace mmssl

static Napi::Object initMmssl(Napi::Env env, Napi::Object exports) { return mmssl::init(env, exports); }
NODE_API_MODULE(mmssl, initMmssl)
