"""The 1x1 (pointwise) convolution as BLAS matrix products, split over the threads.

A 1x1 conv with weights ``W`` (O, C) maps every pixel's C channels to O: per image, ``Y = W X``
with ``X`` (C, L) the image's pixels as columns (L = H*W) -- no im2col needed, ``x`` itself is
the column matrix.  Its gradients are ``dX = W^T dY`` per image and ``dW = sum_n dY_n X_n^T``.

Which products, by the shape:

* L > 1: one product per image, ``(O, C) @ (C, L)``, the images split over the threads
  (``threads.matmul``).  Transposing to put all N*L pixels in one matrix would cost two copies
  for no faster product (measured: 16x960x7x7 -> 160, 3.1 ms per image-product vs 4.2 ms with
  the copies).
* L == 1 (the V3/V4 head and every squeeze-excite conv, which run on pooled 1x1 maps): ``x`` is
  already an (N, C) matrix, so the whole batch is ONE product ``(N, C) @ (C, O)`` instead of N
  matrix-vector products (2x faster at N = 128).
* ``dW`` must not be formed as the N per-image products stacked and then summed: that stack is
  (N, O, C), 629 MB for the 960 -> 1280 head at batch 128, written and read back every step (it
  was 45 % of a V3-Small training step at 32x32).  For few pixels (L <= 16) the batch becomes one
  product ``dW = dY' X'^T`` over all N*L pixels (``dY'`` (O, N*L), ``X'`` (C, N*L): copies of
  only N*L*(O + C) values); for more pixels the per-image products are summed chunk by chunk,
  with chunks of at most ``_DW_CHUNK`` values of stacked partial products (``weight_grad``, which
  also serves im2col's dW).

Every product writes its own slice of the output, and the chunks of ``dW`` depend only on the
shapes, so the results do not depend on the thread count.
"""
import numpy as np

from . import buffers, threads

_DW_CHUNK = 1 << 20     # values of stacked per-image dW products per chunk (4 MB in float32)
_DW_PARTS = 4


def forward(x, w, epilogue=None):
    """x (N, C, L) contiguous, w (O, C) -> y (N, O, L) = W x per image.  ``epilogue(y, lo, hi)``,
    if given, is applied to images lo..hi of y as soon as they are computed (``threads.matmul``)."""
    N, C, L = x.shape
    if L == 1:
        y = buffers.empty((N, w.shape[0]), x.dtype)
        y3 = y.reshape(N, -1, 1)
        threads.matmul(x.reshape(N, C), w.T, out=y)
        if epilogue is not None:
            epilogue(y3, 0, N)
        return y3
    y = buffers.empty((N, w.shape[0], L), x.dtype)
    return threads.matmul(w, x, out=y, epilogue=None if epilogue is None else lambda lo, hi: epilogue(y, lo, hi))


def weight_grad(dy, x, out):
    """out = sum over axis 0 of ``dy @ x^T``: dy (n, ..., M, L), x (n, ..., K, L), out (..., M, K).

    For K > M and long rows it is computed as the sum of ``x @ dy^T``, then transposed: OpenBLAS
    runs these thin products faster with the larger side as the rows of its output, bit for bit
    the same result (measured, one thread, calls alternated: (32 x 3192) @ (3192 x 288) 1.30 ms
    against 0.83 ms transposed; 4 images of (80 x 784) @ (784 x 240) 1.30 against 1.07 ms; but 4
    of (128 x 49) @ (49 x 512) 0.31 against 0.37 ms, hence the row length of at least 128).
    """
    if x.shape[-2] > dy.shape[-2] and dy.shape[-1] >= 128:
        out[...] = np.matmul(x, dy.swapaxes(-1, -2)).sum(axis=0).swapaxes(-1, -2)  # (summing into
        # out's transposed view, a strided write, was slower than the product itself)
    else:
        np.matmul(dy, x.swapaxes(-1, -2)).sum(axis=0, out=out)
    return out


def backward(dy, x, w):
    """dy (N, O, L), x (N, C, L), both contiguous; w (O, C) -> (dx (N, C, L), dw (O, C))."""
    N, O, L = dy.shape
    C = x.shape[1]
    if L <= 16:
        dx = forward(dy, w.T)          # dX = W^T dY: a 1x1 conv with the transposed weights
        dYr = dy.reshape(N, O) if L == 1 else np.ascontiguousarray(dy.transpose(1, 0, 2)).reshape(O, N * L).T
        Xr = x.reshape(N, C) if L == 1 else np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(C, N * L).T
        dw = np.empty((O, C), dtype=x.dtype)
        return dx, threads.matmul(dYr.T, Xr, out=dw)     # (O, N*L) @ (N*L, C)
    # dW in chunks of at most _DW_CHUNK stacked values, and at least _DW_PARTS of them; dX in
    # slices of images.  Both kinds of part go to the threads in one hand-out, dW's (the larger)
    # first: one wait instead of two, and no thread idles between them (measured, 16x240x28x28
    # -> 80, 2 threads: 5.7-6.1 ms against 6.4-6.6 ms as two rounds).  Every part depends only
    # on the shapes, so the results do not depend on the thread count.
    nb = max(1, min(N, _DW_CHUNK // (O * C), -(-N // _DW_PARTS)))
    chunks = -(-N // nb)
    partial = np.empty((chunks, O, C), dtype=x.dtype)
    dx = buffers.empty((N, C, L), x.dtype)
    slices = min(N, threads.MATMUL_PARTS)
    bounds = [N * t // slices for t in range(slices + 1)]
    wT = w.T

    def part(t):
        if t < chunks:
            n0, n1 = t * nb, min(N, (t + 1) * nb)
            weight_grad(dy[n0:n1], x[n0:n1], partial[t])
        else:
            n0, n1 = bounds[t - chunks], bounds[t - chunks + 1]
            np.matmul(wT, dy[n0:n1], out=dx[n0:n1])
    threads.run_parts(part, chunks + slices, threads=None if 2 * dx.size * O >= threads.MIN_PARALLEL_MADDS else 1)
    return dx, partial.sum(axis=0) if chunks > 1 else partial[0]
