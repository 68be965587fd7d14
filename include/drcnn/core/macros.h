// Host/device markers shared by every kernel body. The only place that looks at __CUDACC__.
#pragma once

#if defined(__CUDACC__)
#define DRCNN_HD __host__ __device__ __forceinline__
#define DRCNN_DEVICE __device__ __forceinline__
#define DRCNN_HD_CONSTEXPR __host__ __device__ constexpr
#else
#define DRCNN_HD inline
#define DRCNN_DEVICE inline
#define DRCNN_HD_CONSTEXPR constexpr
#endif

#if defined(__CUDA_ARCH__)
#define DRCNN_ON_DEVICE 1
#else
#define DRCNN_ON_DEVICE 0
#endif
