// matmul / linear (include/drcnn/ops/matmul.h) against a triple-loop float64 reference, and
// the cuBLAS argument mapping gemm_to_column_major proven with a naive column-major GEMM.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "common/allclose.h"
#include "drcnn/core/allocator.h"
#include "drcnn/core/parallel_cpu.h"
#include "drcnn/ops/elementwise.h"
#include "drcnn/ops/matmul.h"
#include "reference/reference.h"

using Catch::Contains;
using drcnn::DType;
using drcnn::Shape;
using drcnn::Tensor;
using drcnn::test::expect_allclose;
using drcnn::test::expect_equal;
using drcnn::test::random_tensor;
namespace ops = drcnn::ops;
namespace ref = drcnn::ref;

namespace {
template <typename T>
constexpr double kEps = std::numeric_limits<T>::epsilon();

// Dot-product error bound (Higham, Accuracy and Stability, eq. 3.5): each output is a sum of
// K products; in any summation order (Eigen blocks and uses FMA) the computed value satisfies
// |c - exact| <= gamma_K * sum_l |a_il| |b_lj|, gamma_K = K u / (1 - K u) ~ K eps/2; we use
// (K + 2) eps * max over outputs of sum_l |a_il||b_lj| (+2 covers the final store rounding).
template <typename T>
double gemm_atol(const ref::RefTensor& a, const ref::RefTensor& b, int64_t K) {
  const auto absa = ref::unary(a, [](double v) { return std::abs(v); });
  const auto absb = ref::unary(b, [](double v) { return std::abs(v); });
  const auto p = ref::matmul(absa, absb);
  double m = 0;
  for (double v : p.data) m = std::max(m, v);
  return double(K + 2) * kEps<T> * m;
}

template <typename T>
void check_matmul(const Tensor& a, const Tensor& b) {
  const auto ra = ref::from_tensor(a), rb = ref::from_tensor(b);
  const int64_t K = a.size(-1);
  const Tensor c = ops::matmul(a, b);
  CHECK(c.dtype() == drcnn::dtype_of_v<T>);
  CHECK(c.is_contiguous());
  expect_allclose(c, ref::matmul(ra, rb), 0, gemm_atol<T>(ra, rb, K));
}

// A [rows, cols] tensor of T in one of the layouts matmul must read: row-major, a transposed
// view (stored [cols, rows]), a row-major view with padded rows (ld > cols), a view with a
// column step (needs a copy), and a broadcast row (stride 0, needs a copy).
template <typename T>
std::vector<std::pair<const char*, Tensor>> matrix_layouts(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<std::pair<const char*, Tensor>> out;
  out.push_back({"row-major", random_tensor<T>({rows, cols}, seed)});
  out.push_back({"transposed", random_tensor<T>({cols, rows}, seed + 1).transpose(0, 1)});
  out.push_back({"padded", random_tensor<T>({rows, cols + 3}, seed + 2).narrow(1, 1, cols)});
  out.push_back({"column step", random_tensor<T>({rows, 2 * cols}, seed + 3).slice(1, 0, 2 * cols, 2)});
  out.push_back({"broadcast row", random_tensor<T>({1, cols}, seed + 4).expand({rows, cols})});
  return out;
}
}  // namespace

TEMPLATE_TEST_CASE("ops/matmul: 2-D products over sizes and layouts", "[ops][cpu]", float, double) {
  const std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1}, {1, 7, 5}, {5, 1, 4}, {4, 6, 1},  {3, 4, 5},
                                                     {1, 33, 1}, {17, 3, 1}, {65, 33, 17}, {64, 64, 64}};
  uint64_t seed = 1;
  for (const auto& [M, K, N] : sizes) {
    for (const auto& [an, a] : matrix_layouts<TestType>(M, K, seed)) {
      for (const auto& [bn, b] : matrix_layouts<TestType>(K, N, seed + 10)) {
        INFO("M " << M << " K " << K << " N " << N << ", a " << an << ", b " << bn);
        check_matmul<TestType>(a, b);
      }
    }
    seed += 20;
  }
}

TEMPLATE_TEST_CASE("ops/matmul: batched 3-D, batch-1 broadcast and strided batches", "[ops][cpu]", float, double) {
  const auto a = random_tensor<TestType>({4, 5, 6}, 1);
  const auto b = random_tensor<TestType>({4, 6, 3}, 2);
  check_matmul<TestType>(a, b);
  check_matmul<TestType>(random_tensor<TestType>({1, 5, 6}, 3), b);   // a broadcasts over the batch
  check_matmul<TestType>(a, random_tensor<TestType>({1, 6, 3}, 4));   // b broadcasts
  check_matmul<TestType>(random_tensor<TestType>({1, 5, 6}, 5), random_tensor<TestType>({1, 6, 3}, 6));
  CHECK(ops::matmul(random_tensor<TestType>({1, 5, 6}, 3), b).shape() == Shape{4, 5, 3});
  // Transposed inner matrices (views), and a batch dim that is not outermost in memory.
  check_matmul<TestType>(random_tensor<TestType>({4, 6, 5}, 7).transpose(1, 2), random_tensor<TestType>({4, 3, 6}, 8).transpose(1, 2));
  check_matmul<TestType>(random_tensor<TestType>({5, 4, 6}, 9).permute({1, 0, 2}), b);
  check_matmul<TestType>(a, random_tensor<TestType>({6, 3, 4}, 10).permute({2, 0, 1}));
  // Expanded batch (stride 0 but extent 4), sliced batch, and an odd 3-D size.
  check_matmul<TestType>(random_tensor<TestType>({1, 5, 6}, 11).expand({4, 5, 6}), b);
  check_matmul<TestType>(random_tensor<TestType>({8, 5, 6}, 12).slice(0, 0, 8, 2), b);
  check_matmul<TestType>(random_tensor<TestType>({3, 65, 33}, 13), random_tensor<TestType>({3, 33, 17}, 14));
}

TEMPLATE_TEST_CASE("ops/matmul: empty extents", "[ops][cpu]", float, double) {
  const DType dt = drcnn::dtype_of_v<TestType>;
  // K = 0: a sum of nothing, so every output is 0 (not uninitialised memory).
  for (int rep = 0; rep < 3; ++rep) {
    Tensor junk = Tensor::full({3, 4}, NAN, dt);  // leaves NaN in the pool for the next block
    junk = Tensor();
    const Tensor c = ops::matmul(Tensor::empty({3, 0}, dt), Tensor::empty({0, 4}, dt));
    CHECK(c.shape() == Shape{3, 4});
    expect_equal(c, std::vector<double>(12, 0.0));
  }
  expect_equal(ops::matmul(Tensor::empty({2, 2, 0}, dt), Tensor::empty({2, 0, 3}, dt)), std::vector<double>(12, 0.0));
  expect_equal(ops::matmul(Tensor::empty({0, 3}, dt).transpose(0, 1), Tensor::empty({0, 2}, dt)),
               std::vector<double>(6, 0.0));
  CHECK(ops::matmul(Tensor::empty({0, 3}, dt), Tensor::ones({3, 4}, dt)).shape() == Shape{0, 4});
  CHECK(ops::matmul(Tensor::ones({2, 3}, dt), Tensor::empty({3, 0}, dt)).shape() == Shape{2, 0});
  CHECK(ops::matmul(Tensor::empty({0, 2, 3}, dt), Tensor::empty({0, 3, 4}, dt)).shape() == Shape{0, 2, 4});
  CHECK(ops::matmul(Tensor::empty({1, 2, 3}, dt), Tensor::empty({0, 3, 4}, dt)).shape() == Shape{0, 2, 4});
}

TEST_CASE("ops/matmul: hand-computed product", "[ops][cpu]") {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::from_vector<float>({7, 8, 9, 10, 11, 12}, {3, 2});
  expect_equal(ops::matmul(a, b), {58, 64, 139, 154});
  expect_equal(ops::matmul(b.transpose(0, 1), a.transpose(0, 1)), {58, 139, 64, 154});
  expect_equal(ops::matmul(a, a.transpose(0, 1)), {14, 32, 32, 77});
}

TEST_CASE("ops/matmul: transposed and padded views are used without copies", "[ops][cpu]") {
  auto& alloc = drcnn::cpu_allocator();
  const int64_t n = 96;  // 36 KiB per operand
  const Tensor a = random_tensor<float>({n, n}, 1).transpose(0, 1);
  const Tensor b = random_tensor<float>({n, n + 5}, 2).narrow(1, 2, n);
  const size_t out_class = drcnn::pool_size_class(n * n * sizeof(float), 64);
  {
    alloc.reset_peak();
    const size_t before = alloc.stats().bytes_in_use;
    const Tensor c = ops::matmul(a, b);
    // The only allocation is the output: neither input was copied.
    CHECK(alloc.stats().peak_bytes_in_use - before == out_class);
    check_matmul<float>(a, b);
  }
  {
    // A column step cannot be expressed as (ld, transpose): that input is copied (control).
    const Tensor s = random_tensor<float>({n, 2 * n}, 3).slice(1, 0, 2 * n, 2);
    alloc.reset_peak();
    const size_t before = alloc.stats().bytes_in_use;
    const Tensor c = ops::matmul(s, b);
    CHECK(alloc.stats().peak_bytes_in_use - before == 2 * out_class);
  }
}

TEST_CASE("ops/matmul: errors", "[ops][cpu]") {
  const Tensor a = Tensor::ones({2, 3});
  REQUIRE_THROWS_WITH(ops::matmul(a, Tensor::ones({3, 4}, DType::Float64)),
                      Contains("matmul: operands must have the same dtype, got float32 and float64"));
  REQUIRE_THROWS_WITH(ops::matmul(Tensor::ones({2, 3}, DType::Int64), Tensor::ones({3, 4}, DType::Int64)),
                      Contains("matmul: expected float32 or float64, got int64"));
  REQUIRE_THROWS_WITH(ops::matmul(a, Tensor::ones({4, 2})), Contains("matmul: inner extents differ: [2, 3] @ [4, 2]"));
  REQUIRE_THROWS_WITH(ops::matmul(Tensor::ones({3}), Tensor::ones({3})),
                      Contains("matmul: expected two 2-D or two 3-D tensors, got shapes [3] and [3]"));
  REQUIRE_THROWS_WITH(ops::matmul(a, Tensor::ones({1, 3, 4})), Contains("matmul: expected two 2-D or two 3-D"));
  REQUIRE_THROWS_WITH(ops::matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 4})),
                      Contains("matmul: batch sizes 2 and 3 differ"));
  REQUIRE_THROWS_WITH(ops::matmul(a, Tensor()), Contains("matmul: operand 1 is an undefined tensor"));
}

// ============================================================================ linear
TEMPLATE_TEST_CASE("ops/linear: x @ weight^T + bias", "[ops][cpu]", float, double) {
  const auto x = random_tensor<TestType>({7, 5}, 1);
  const auto w = random_tensor<TestType>({3, 5}, 2);
  const auto bias = random_tensor<TestType>({3}, 3);
  const auto rx = ref::from_tensor(x), rw = ref::from_tensor(w);
  const auto rwt = ref::permute(rw, {1, 0});
  const auto prod = ref::matmul(rx, rwt);
  const double atol = gemm_atol<TestType>(rx, rwt, 5);
  expect_allclose(ops::linear(x, w), prod, 0, atol);
  // + bias: one more rounding, 0.5 ulp of a value <= sum|x||w| + |b| <= 6 (K = 5, |v| <= 1):
  // <= 3 eps; 8 eps leaves room for the reference's own rounding of prod.
  expect_allclose(ops::linear(x, w, bias), ref::binary(prod, ref::from_tensor(bias), std::plus<double>()), 0,
                  atol + kEps<TestType> * 8);
  expect_allclose(ops::linear(x.transpose(0, 1).contiguous().transpose(0, 1), w), prod, 0, atol);
  REQUIRE_THROWS_WITH(ops::linear(x, random_tensor<TestType>({3, 4}, 4)),
                      Contains("linear: input has 5 features but weight [3, 4] expects 4"));
  REQUIRE_THROWS_WITH(ops::linear(x, w, random_tensor<TestType>({4}, 5)), Contains("linear: bias must have shape [3], got [4]"));
  REQUIRE_THROWS_WITH(ops::linear(random_tensor<TestType>({5}, 6), w), Contains("linear: expected input [N, in]"));
  REQUIRE_THROWS_WITH(ops::linear(Tensor(), w), Contains("linear: input is an undefined tensor"));
}

// ============================================================================ cuBLAS mapping
namespace {
// Column-major GEMM as cuBLAS defines it: C(i, j) = sum_l opA(i, l) opB(l, j) for i < m,
// j < n, where X(i, j) = ptr[i + j * ld] and opX(i, j) = X(j, i) when transposed.
void naive_column_major_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const double* A, int64_t lda,
                             const double* B, int64_t ldb, double* C, int64_t ldc) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      long double s = 0;
      for (int64_t l = 0; l < k; ++l) {
        const double a = trans_a ? A[l + i * lda] : A[i + l * lda];
        const double b = trans_b ? B[j + l * ldb] : B[l + j * ldb];
        s += (long double)a * b;
      }
      C[i + j * ldc] = double(s);
    }
}
}  // namespace

TEST_CASE("ops/gemm_to_column_major: the cuBLAS argument mapping computes the row-major product", "[ops][cpu]") {
  const std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1}, {3, 5, 7}, {7, 3, 5}, {1, 9, 2}, {13, 1, 11}, {6, 6, 1}};
  for (const auto& [M, N, K] : sizes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (int64_t pad : {int64_t(0), int64_t(3)}) {
          INFO("M " << M << " N " << N << " K " << K << " trans_a " << ta << " trans_b " << tb << " pad " << pad);
          // Row-major storage: A is M x K (or K x M when transposed), row stride lda.
          const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
          const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
          const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
          const auto A = drcnn::test::random_values(a_rows * lda, 10 + M, -1, 1);
          const auto B = drcnn::test::random_values(b_rows * ldb, 20 + N, -1, 1);
          // Row-major reference: C[i][j] = sum_l op(A)[i][l] op(B)[l][j].
          std::vector<double> expect(size_t(M * N));
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              long double s = 0;
              for (int64_t l = 0; l < K; ++l) {
                const double a = ta ? A[size_t(l * lda + i)] : A[size_t(i * lda + l)];
                const double b = tb ? B[size_t(j * ldb + l)] : B[size_t(l * ldb + j)];
                s += (long double)a * b;
              }
              expect[size_t(i * N + j)] = double(s);
            }
          const auto cm = ops::gemm_to_column_major(ta, tb, M, N, K, lda, ldb, ldc);
          CHECK(cm.first_is_b);
          CHECK(cm.k == K);
          const double* first = cm.first_is_b ? B.data() : A.data();
          const double* second = cm.first_is_b ? A.data() : B.data();
          std::vector<double> C(size_t(M * ldc), NAN);  // padding must stay untouched
          naive_column_major_gemm(cm.trans_first, cm.trans_second, cm.m, cm.n, cm.k, first, cm.ld_first, second,
                                  cm.ld_second, C.data(), cm.ldc);
          std::vector<double> got(size_t(M * N));
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) got[size_t(i * N + j)] = C[size_t(i * ldc + j)];
          // Same products summed in the same order in long double: equal to the last bit.
          expect_allclose(got, expect, 0, 0);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = N; j < ldc; ++j) CHECK(std::isnan(C[size_t(i * ldc + j)]));
        }
      }
    }
  }
}

TEST_CASE("ops/matmul: results are bitwise identical with 1 and 2 threads", "[ops][cpu]") {
  // The CPU GEMM splits C into fixed 256-row blocks (kernels/cpu/gemm.cpp), so the summation
  // order of every element does not depend on the thread count. 600 rows = 3 blocks, each big
  // enough to take the parallel path; also a transposed operand and a batch.
  drcnn::Generator g(42);
  const Tensor a = Tensor::randn({600, 300}, g), b = Tensor::randn({300, 200}, g);
  const Tensor bt = Tensor::randn({200, 300}, g).transpose(0, 1);
  const Tensor ba = Tensor::randn({3, 300, 300}, g);
  auto run = [&](int threads) {
    drcnn::set_cpu_threads(threads);
    std::vector<std::vector<float>> out{drcnn::ops::matmul(a, b).to_vector<float>(),
                                        drcnn::ops::matmul(a, bt).to_vector<float>(),
                                        drcnn::ops::matmul(ba, ba).to_vector<float>()};
    drcnn::set_cpu_threads(0);
    return out;
  };
  const auto one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
}
