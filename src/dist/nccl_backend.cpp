// libdrcnn_dist_nccl.so: the NCCL transport of drcnn_dist for CUDA tensors (backend_abi.h).
// Loaded with dlopen only by a launched process that trains on a GPU; the 128-byte
// ncclUniqueId is made by rank 0 and carried to the others by the MPI plugin
// (Communicator::init_gpu). Collectives run on a communication stream of the plugin's own,
// ordered after the caller's stream with an event, so gradient buckets all-reduce while the
// backward pass goes on on the compute stream; test() polls the completion event (and NCCL's
// asynchronous error), and makes the caller's stream wait for it.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "backend_abi.h"

namespace {

struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;  // communication stream
  int device = 0;
  std::string error;
};

struct Request {
  cudaEvent_t done = nullptr;
};

int cuda_fail(NcclState& s, const char* what, cudaError_t e) {
  s.error = std::string(what) + ": " + cudaGetErrorString(e);
  return 1;
}
int nccl_fail(NcclState& s, const char* what, ncclResult_t r) {
  s.error = std::string(what) + ": " + ncclGetErrorString(r) + " (" + ncclGetLastError(s.comm) + ")";
  return 1;
}

bool nccl_type(int dtype, ncclDataType_t& t) {
  switch (dtype) {
    case DRCNN_DIST_F32: t = ncclFloat32; return true;
    case DRCNN_DIST_F64: t = ncclFloat64; return true;
    case DRCNN_DIST_I32: t = ncclInt32; return true;
    case DRCNN_DIST_I64: t = ncclInt64; return true;
    case DRCNN_DIST_U8: t = ncclUint8; return true;
    case DRCNN_DIST_F16: t = ncclFloat16; return true;
    case DRCNN_DIST_BF16: t = ncclBfloat16; return true;
    default: return false;
  }
}

// Orders the communication stream after `caller`, runs `launch` on it, records the completion.
template <typename Launch>
int enqueue(NcclState& s, void* caller, void** request, const char* what, Launch launch) {
  cudaError_t e = cudaSetDevice(s.device);
  if (e != cudaSuccess) return cuda_fail(s, "cudaSetDevice", e);
  cudaEvent_t ready = nullptr;
  if ((e = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming)) != cudaSuccess) return cuda_fail(s, "cudaEventCreate", e);
  if ((e = cudaEventRecord(ready, static_cast<cudaStream_t>(caller))) != cudaSuccess ||
      (e = cudaStreamWaitEvent(s.stream, ready, 0)) != cudaSuccess) {
    cudaEventDestroy(ready);
    return cuda_fail(s, "ordering the NCCL stream after the compute stream", e);
  }
  cudaEventDestroy(ready);  // destroyed after its pending wait is enqueued: allowed
  const ncclResult_t r = launch();
  if (r != ncclSuccess) return nccl_fail(s, what, r);
  auto* q = new Request;
  if ((e = cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming)) != cudaSuccess ||
      (e = cudaEventRecord(q->done, s.stream)) != cudaSuccess) {
    delete q;
    return cuda_fail(s, "recording the NCCL completion event", e);
  }
  *request = q;
  return 0;
}

int do_all_reduce(void* self, void* buf, uint64_t count, int dtype, int op, void* stream, void** request) {
  NcclState& s = *static_cast<NcclState*>(self);
  ncclDataType_t t;
  if (!nccl_type(dtype, t)) {
    s.error = "NCCL all_reduce: unsupported element type code " + std::to_string(dtype);
    return 1;
  }
  return enqueue(s, stream, request, "ncclAllReduce", [&] {
    return ncclAllReduce(buf, buf, size_t(count), t, op == DRCNN_DIST_MAX ? ncclMax : ncclSum, s.comm, s.stream);
  });
}

int do_broadcast(void* self, void* buf, uint64_t bytes, int root, void* stream, void** request) {
  NcclState& s = *static_cast<NcclState*>(self);
  return enqueue(s, stream, request, "ncclBroadcast",
                 [&] { return ncclBroadcast(buf, buf, size_t(bytes), ncclUint8, root, s.comm, s.stream); });
}

int do_test(void* self, void* request, void* stream, int* done) {
  NcclState& s = *static_cast<NcclState*>(self);
  auto* q = static_cast<Request*>(request);
  *done = 0;
  const cudaError_t e = cudaEventQuery(q->done);
  if (e == cudaErrorNotReady) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(s.comm, &async);
    if (r != ncclSuccess) return nccl_fail(s, "ncclCommGetAsyncError", r);
    if (async != ncclSuccess) return nccl_fail(s, "NCCL (asynchronous error of a pending collective)", async);
    return 0;
  }
  if (e != cudaSuccess) return cuda_fail(s, "cudaEventQuery on an NCCL collective", e);
  const cudaError_t w = cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), q->done, 0);
  cudaEventDestroy(q->done);
  delete q;
  if (w != cudaSuccess) return cuda_fail(s, "cudaStreamWaitEvent after an NCCL collective", w);
  *done = 1;
  return 0;
}

const char* do_last_error(void* self) { return static_cast<NcclState*>(self)->error.c_str(); }

void do_abort(void* self, int) {
  auto* s = static_cast<NcclState*>(self);
  if (s->comm) ncclCommAbort(s->comm);  // unblocks the pending kernels; the MPI side then aborts the job
  s->comm = nullptr;
}

void do_finalize(void* self) {
  auto* s = static_cast<NcclState*>(self);
  if (s->comm) ncclCommDestroy(s->comm);
  if (s->stream) cudaStreamDestroy(s->stream);
  delete s;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int drcnn_dist_nccl_unique_id(void* id128, char* error,
                                                                                size_t error_size) {
  static_assert(sizeof(ncclUniqueId) == 128, "ncclUniqueId is 128 bytes");
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) {
    std::snprintf(error, error_size, "ncclGetUniqueId: %s", ncclGetErrorString(r));
    return 1;
  }
  std::memcpy(id128, &id, sizeof(id));
  return 0;
}

extern "C" __attribute__((visibility("default"))) int drcnn_dist_nccl_open(drcnn_dist_backend* out, const void* id128,
                                                                           int rank, int size, int device, char* error,
                                                                           size_t error_size) {
  auto* s = new (std::nothrow) NcclState;
  if (!s) return 1;
  s->device = device;
  auto failed = [&](const std::string& text) {
    std::snprintf(error, error_size, "%s", text.c_str());
    if (s->stream) cudaStreamDestroy(s->stream);
    delete s;
    return 1;
  };
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return failed(std::string("cudaSetDevice: ") + cudaGetErrorString(e));
  if ((e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess)
    return failed(std::string("cudaStreamCreate: ") + cudaGetErrorString(e));
  ncclUniqueId id;
  std::memcpy(&id, id128, sizeof(id));
  const ncclResult_t r = ncclCommInitRank(&s->comm, size, id, rank);
  if (r != ncclSuccess) return failed(std::string("ncclCommInitRank: ") + ncclGetErrorString(r));
  std::memset(out, 0, sizeof(*out));
  out->abi_version = DRCNN_DIST_ABI_VERSION;
  out->rank = rank;
  out->size = size;
  out->self = s;
  out->all_reduce = do_all_reduce;
  out->broadcast = do_broadcast;
  out->all_gather_v = nullptr;
  out->barrier = nullptr;
  out->test = do_test;
  out->last_error = do_last_error;
  out->abort = do_abort;
  out->finalize = do_finalize;
  return 0;
}
