// The Communicator's collectives across real processes: run by ctest as
// `mpiexec -n 2 drcnn_tests_dist` (tests/CMakeLists.txt, label dist); every rank runs every test
// case in the same order, so the collectives match. Expected values are computed here from the
// ranks' inputs, independently of the transport.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "drcnn/data/sampler.h"
#include "drcnn/dist/communicator.h"

using namespace drcnn;

namespace {
dist::Communicator& comm() { return dist::world(); }
// Rank r's value of element i (small integers: exact in every dtype, f16 and bf16 included).
double value(int r, int64_t i) { return double((3 * r + 1) * ((i % 7) + 1)); }
}  // namespace

TEST_CASE("dist: the world comes from the launcher") {
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  REQUIRE(n != nullptr);  // ctest starts this binary through mpiexec
  CHECK(comm().size() == std::atoi(n));
  CHECK(comm().size() >= 2);
  CHECK(comm().backend() == "mpi");
  CHECK(comm().local_size() == comm().size());  // one machine
  CHECK(comm().local_rank() == comm().rank());
}

TEST_CASE("dist: all_reduce sum and mean of every dtype") {
  const int W = comm().size(), R = comm().rank();
  const int64_t n = 37;
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32, DType::Int64,
                   DType::UInt8}) {
    std::vector<double> mine(n);
    for (int64_t i = 0; i < n; ++i) mine[size_t(i)] = value(R, i);
    Tensor t = Tensor::from_vector(mine, Shape{n}).to(dt);
    comm().all_reduce(t, dist::ReduceOp::Sum, "sum");
    const std::vector<double> got = t.to(DType::Float64).to_vector<double>();
    for (int64_t i = 0; i < n; ++i) {
      double expected = 0;
      for (int r = 0; r < W; ++r) expected += value(r, i);
      INFO("dtype " << dtype_name(dt) << " element " << i);
      CHECK(got[size_t(i)] == expected);
    }
    if (is_floating(dt)) {
      Tensor m = Tensor::from_vector(mine, Shape{n}).to(dt);
      comm().all_reduce(m, dist::ReduceOp::Mean, "mean");
      const std::vector<double> gm = m.to(DType::Float64).to_vector<double>();
      for (int64_t i = 0; i < n; ++i) {
        double expected = 0;
        for (int r = 0; r < W; ++r) expected += value(r, i);
        INFO("mean, dtype " << dtype_name(dt) << " element " << i);
        CHECK(gm[size_t(i)] == Approx(expected / W).epsilon(dt == DType::BFloat16 ? 1e-2 : 1e-3));
      }
    } else {
      Tensor m = Tensor::from_vector(mine, Shape{n}).to(dt);
      CHECK_THROWS_WITH(comm().all_reduce(m, dist::ReduceOp::Mean, "int mean"), Catch::Contains("floating-point"));
    }
  }
}

TEST_CASE("dist: all_reduce of bool is a logical or; of an empty tensor a no-op that still synchronises") {
  const int R = comm().rank();
  // Element i is true on rank i % 3 == R only (rank 0: elements 0, 3; rank 1: 1, 4; none: 2, 5 for 2 ranks).
  std::vector<bool> mine(6);
  for (int i = 0; i < 6; ++i) mine[size_t(i)] = (i % 3) == R;
  Tensor b = Tensor::from_vector(std::vector<uint8_t>(mine.begin(), mine.end()), Shape{6}).to(DType::Bool);
  comm().all_reduce(b, dist::ReduceOp::Sum, "bool");
  const std::vector<bool> got = b.to_vector<bool>();
  for (int i = 0; i < 6; ++i) CHECK(got[size_t(i)] == ((i % 3) < comm().size()));
  Tensor e = Tensor::zeros({0}, DType::Float32);
  comm().all_reduce(e, dist::ReduceOp::Mean, "empty");
  CHECK(e.numel() == 0);
  Tensor e2 = Tensor::zeros({0, 4}, DType::Int64);
  comm().all_reduce(e2, dist::ReduceOp::Sum, "empty 2-d");
  CHECK(e2.numel() == 0);
}

TEST_CASE("dist: nonblocking all_reduce, broadcast, all_gather of variable lengths, barrier") {
  const int W = comm().size(), R = comm().rank();
  std::vector<Tensor> ts;
  std::vector<dist::Work> works;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(Tensor::full({1000 + k}, double(R + k), DType::Float32));
    works.push_back(comm().all_reduce_async(ts.back(), dist::ReduceOp::Sum, "async"));
  }
  for (int k = 0; k < 4; ++k) {
    works[size_t(k)].wait();
    double expected = 0;
    for (int r = 0; r < W; ++r) expected += r + k;
    const std::vector<float> v = ts[size_t(k)].to_vector<float>();
    CHECK(v.front() == float(expected));
    CHECK(v.back() == float(expected));
  }
  Tensor t = Tensor::full({5}, double(10 + R), DType::Float64);
  comm().broadcast(t, W - 1, "broadcast from the last rank");
  CHECK(t.to_vector<double>() == std::vector<double>(5, double(10 + W - 1)));

  std::vector<uint8_t> bytes;  // rank r sends 3 * r bytes (rank 0 sends none)
  for (int k = 0; k < 3 * R; ++k) bytes.push_back(uint8_t(R * 16 + k));
  const auto all = comm().all_gather(bytes, "gather");
  REQUIRE(int(all.size()) == W);
  for (int r = 0; r < W; ++r) {
    REQUIRE(all[size_t(r)].size() == size_t(3 * r));
    for (int k = 0; k < 3 * r; ++k) CHECK(all[size_t(r)][size_t(k)] == uint8_t(r * 16 + k));
  }
  comm().barrier("barrier");
}

TEST_CASE("dist: the interleaved group sampler gives every image once per epoch, as one process of W x B") {
  const int W = comm().size(), R = comm().rank();
  // 24 images, two aspect groups (12 wide, 12 tall): a multiple of B * W, so nothing is padded.
  std::vector<uint8_t> flags(24);
  for (size_t i = 0; i < flags.size(); ++i) flags[i] = uint8_t(i % 2);
  for (int64_t B : {1, 2, 3}) {
    data::GroupSamplerOptions o;
    o.batch_size = B;
    o.world_size = W;
    o.rank = R;
    o.seed = 11;
    o.interleave_ranks = true;
    const data::GroupSampler mine(flags, o);
    data::GroupSamplerOptions one = o;
    one.batch_size = B * W;
    one.world_size = 1;
    one.rank = 0;
    const data::GroupSampler single(flags, one);
    for (uint64_t epoch : {0u, 1u, 5u}) {
      const std::vector<int64_t> idx = mine.indices(epoch);
      std::vector<uint8_t> bytes(idx.size() * sizeof(int64_t));
      std::memcpy(bytes.data(), idx.data(), bytes.size());
      const auto all = comm().all_gather(bytes, "sampler indices");
      std::vector<std::vector<int64_t>> per_rank;
      std::multiset<int64_t> seen;
      for (const auto& b : all) {
        per_rank.emplace_back(b.size() / sizeof(int64_t));
        std::memcpy(per_rank.back().data(), b.data(), b.size());
        seen.insert(per_rank.back().begin(), per_rank.back().end());
      }
      INFO("batch " << B << " epoch " << epoch);
      REQUIRE(seen.size() == flags.size());
      for (int64_t i = 0; i < int64_t(flags.size()); ++i) CHECK(seen.count(i) == 1);
      // Iteration k of rank r = images [r * B, (r + 1) * B) of the single process's batch k.
      const std::vector<int64_t> ref = single.indices(epoch);
      for (int r = 0; r < W; ++r)
        for (size_t k = 0; k < per_rank[size_t(r)].size(); ++k) {
          const size_t it = k / size_t(B), j = k % size_t(B);
          CHECK(per_rank[size_t(r)][k] == ref[it * size_t(B * W) + size_t(r) * size_t(B) + j]);
          // Each batch stays within one aspect group.
          CHECK(flags[size_t(per_rank[size_t(r)][k])] == flags[size_t(per_rank[size_t(r)][it * size_t(B)])]);
        }
    }
  }
}

// Hidden (not run by ctest; no timed tests): `mpiexec -n 2 drcnn_tests_dist "[.bench]"` prints
// the time of a 25 MB float32 all-reduce, the size of one gradient bucket (docs/distributed.md).
TEST_CASE("dist: all_reduce of one 25 MB bucket, timed", "[.bench]") {
  Tensor t = Tensor::full({25 * 1024 * 1024 / 4}, 1.0, DType::Float32);
  comm().barrier("bench start");
  const auto t0 = std::chrono::steady_clock::now();
  const int reps = 10;
  for (int k = 0; k < reps; ++k) comm().all_reduce(t, dist::ReduceOp::Sum, "bench");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  std::printf("rank %d: 25 MB all_reduce: %.1f ms (%.2f GB/s of buffer)\n", comm().rank(), s * 1e3,
              25.0 * 1024 * 1024 / s / 1e9);
  CHECK(t.to_vector<float>()[0] > 0);
}
