// libdrcnn_dist_mpi.so: the MPI transport of drcnn_dist (src/dist/backend_abi.h), over Debian's
// OpenMPI. Loaded with dlopen by src/dist/communicator.cpp only when mpirun/mpiexec (or another
// PMI launcher) started the process. Every collective is the nonblocking MPI-3 form
// (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgatherv, MPI_Ibarrier) so the caller can poll it against
// a deadline; errors return (MPI_ERRORS_RETURN) instead of aborting inside MPI.
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "backend_abi.h"

namespace {

struct MpiState {
  MPI_Comm comm = MPI_COMM_NULL;
  bool initialized_here = false;
  std::string error;
};

struct Request {
  MPI_Request req = MPI_REQUEST_NULL;
  std::vector<int> counts, displs;  // all_gather_v: kept alive until completion
};

int fail(MpiState& s, const char* what, int code) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(code, text, &len);
  s.error = std::string(what) + ": " + std::string(text, size_t(len));
  return 1;
}

bool mpi_type(int dtype, MPI_Datatype& t) {
  switch (dtype) {
    case DRCNN_DIST_F32: t = MPI_FLOAT; return true;
    case DRCNN_DIST_F64: t = MPI_DOUBLE; return true;
    case DRCNN_DIST_I32: t = MPI_INT32_T; return true;
    case DRCNN_DIST_I64: t = MPI_INT64_T; return true;
    case DRCNN_DIST_U8: t = MPI_UINT8_T; return true;
    default: return false;
  }
}

int start(MpiState& s, const char* what, int code, Request* r, void** request) {
  if (code != MPI_SUCCESS) {
    delete r;
    return fail(s, what, code);
  }
  *request = r;
  return 0;
}

int do_all_reduce(void* self, void* buf, uint64_t count, int dtype, int op, void*, void** request) {
  MpiState& s = *static_cast<MpiState*>(self);
  MPI_Datatype t;
  if (!mpi_type(dtype, t)) {
    s.error = "MPI all_reduce: unsupported element type code " + std::to_string(dtype);
    return 1;
  }
  if (count > uint64_t(INT_MAX)) {
    s.error = "MPI all_reduce: " + std::to_string(count) + " elements exceed MPI's int count (split the buffer)";
    return 1;
  }
  auto* r = new Request;
  return start(s, "MPI_Iallreduce", MPI_Iallreduce(MPI_IN_PLACE, buf, int(count), t, op == DRCNN_DIST_MAX ? MPI_MAX : MPI_SUM,
                                                   s.comm, &r->req),
               r, request);
}

int do_broadcast(void* self, void* buf, uint64_t bytes, int root, void*, void** request) {
  MpiState& s = *static_cast<MpiState*>(self);
  if (bytes > uint64_t(INT_MAX)) {
    s.error = "MPI broadcast: " + std::to_string(bytes) + " bytes exceed MPI's int count";
    return 1;
  }
  auto* r = new Request;
  return start(s, "MPI_Ibcast", MPI_Ibcast(buf, int(bytes), MPI_BYTE, root, s.comm, &r->req), r, request);
}

int do_all_gather_v(void* self, const void* send, void* recv, const uint64_t* counts, void** request) {
  MpiState& s = *static_cast<MpiState*>(self);
  int size = 0, rank = 0;
  MPI_Comm_size(s.comm, &size);
  MPI_Comm_rank(s.comm, &rank);
  auto* r = new Request;
  r->counts.resize(size_t(size));
  r->displs.resize(size_t(size));
  uint64_t total = 0;
  for (int i = 0; i < size; ++i) {
    r->displs[size_t(i)] = int(total);
    r->counts[size_t(i)] = int(counts[i]);
    total += counts[i];
    if (total > uint64_t(INT_MAX)) {
      delete r;
      s.error = "MPI all_gather: more than 2^31 - 1 bytes in all";
      return 1;
    }
  }
  return start(s, "MPI_Iallgatherv",
               MPI_Iallgatherv(send, r->counts[size_t(rank)], MPI_BYTE, recv, r->counts.data(), r->displs.data(),
                               MPI_BYTE, s.comm, &r->req),
               r, request);
}

int do_barrier(void* self, void** request) {
  MpiState& s = *static_cast<MpiState*>(self);
  auto* r = new Request;
  return start(s, "MPI_Ibarrier", MPI_Ibarrier(s.comm, &r->req), r, request);
}

int do_test(void* self, void* request, void*, int* done) {
  MpiState& s = *static_cast<MpiState*>(self);
  auto* r = static_cast<Request*>(request);
  int flag = 0;
  const int code = MPI_Test(&r->req, &flag, MPI_STATUS_IGNORE);
  if (code != MPI_SUCCESS) {
    *done = 0;
    return fail(s, "MPI_Test", code);
  }
  *done = flag;
  if (flag) delete r;
  return 0;
}

const char* do_last_error(void* self) { return static_cast<MpiState*>(self)->error.c_str(); }

void do_abort(void* self, int code) {
  MpiState& s = *static_cast<MpiState*>(self);
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(s.comm == MPI_COMM_NULL ? MPI_COMM_WORLD : s.comm, code);
}

void do_finalize(void* self) {
  auto* s = static_cast<MpiState*>(self);
  if (s->comm != MPI_COMM_NULL) MPI_Comm_free(&s->comm);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (s->initialized_here && !finalized) MPI_Finalize();
  delete s;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int drcnn_dist_mpi_open(drcnn_dist_backend* out, char* error,
                                                                          size_t error_size) {
  auto* s = new (std::nothrow) MpiState;
  if (!s) return 1;
  auto failed = [&](const std::string& text) {
    std::snprintf(error, error_size, "%s", text.c_str());
    delete s;
    return 1;
  };
  int initialized = 0, provided = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return failed("MPI_Init_thread failed");
    s->initialized_here = true;
  }
  // A communicator of our own (collectives of a library never mix with the application's),
  // errors returned to us rather than aborting inside MPI.
  if (MPI_Comm_dup(MPI_COMM_WORLD, &s->comm) != MPI_SUCCESS) return failed("MPI_Comm_dup failed");
  MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::memset(out, 0, sizeof(*out));
  out->abi_version = DRCNN_DIST_ABI_VERSION;
  MPI_Comm_rank(s->comm, &out->rank);
  MPI_Comm_size(s->comm, &out->size);
  // Local rank: the rank among the processes that share this node's memory.
  MPI_Comm local = MPI_COMM_NULL;
  if (MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, out->rank, MPI_INFO_NULL, &local) != MPI_SUCCESS)
    return failed("MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed");
  MPI_Comm_rank(local, &out->local_rank);
  MPI_Comm_size(local, &out->local_size);
  MPI_Comm_free(&local);
  out->self = s;
  out->all_reduce = do_all_reduce;
  out->broadcast = do_broadcast;
  out->all_gather_v = do_all_gather_v;
  out->barrier = do_barrier;
  out->test = do_test;
  out->last_error = do_last_error;
  out->abort = do_abort;
  out->finalize = do_finalize;
  return 0;
}
