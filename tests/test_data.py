"""The packaged digits, the split, the transforms, the loader and ImageFolder."""
import hashlib

import numpy as np
import pytest

from npmobilenet.data import (ImageFolder, Loader, RandomShiftScale, channel_stats, digits_loaders,
                              digits_split, load_digits, normalize, random_shift_scale,
                              replicate_channels, resize_bilinear, stratified_split)
from npmobilenet.data.digits import DIGITS_PATH
from npmobilenet.data.transforms import _shift_scale_matrices, interp_matrix
from npmobilenet.train import SGD

# class counts of the 1,797 digits (UCI optdigits.tes; npmobilenet/data/README.md)
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
# sha256 of sklearn/datasets/data/digits.csv.gz in the scikit-learn 1.9.1 wheel (its RECORD file)
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


@pytest.fixture(scope="module")
def digits32():
    return digits_split(32)


# ---- the dataset and the split ------------------------------------------------------------------

def test_packaged_file_is_the_recorded_copy():
    assert hashlib.sha256(DIGITS_PATH.read_bytes()).hexdigest() == DIGITS_SHA256
    assert (DIGITS_PATH.parent / "README.md").read_text().count("CC BY 4.0") >= 1


def test_load_digits_shapes_range_and_counts():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.unique(x * 16), np.arange(17))     # counts 0..16, scaled by 1/16
    assert np.bincount(y).tolist() == CLASS_COUNTS


def test_stratified_split_sizes_classes_and_determinism():
    _, y = load_digits()
    tr, te = stratified_split(y, 360, seed=0)
    assert (len(tr), len(te)) == (1437, 360)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
    share = np.array(CLASS_COUNTS) * 360 / 1797
    per_class = np.bincount(y[te], minlength=10)
    assert np.all((per_class == np.floor(share)) | (per_class == np.ceil(share)))
    tr2, te2 = stratified_split(y, 360, seed=0)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, stratified_split(y, 360, seed=1)[1])
    assert len(stratified_split(y, 500, seed=0)[1]) == 500
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(y, 1797)


def test_digits_split_resizes(digits32):
    (x, y), (xt, yt) = digits32
    assert x.shape == (1437, 1, 32, 32) and xt.shape == (360, 1, 32, 32) and x.dtype == np.float32
    (x8, y8), _ = digits_split(8)
    np.testing.assert_array_equal(y, y8)
    np.testing.assert_array_equal(x, resize_bilinear(x8, 32))


def test_logistic_regression_reaches_95_percent():
    # softmax regression on the 64 raw pixels, trained with our SGD: proves data, labels and split agree
    (x, y), (xt, yt) = digits_split()
    mu, sd = x.mean(), x.std()
    flat = lambda a: ((a.reshape(len(a), -1) - mu) / sd).astype(np.float64)   # noqa: E731
    params = {"weight": np.zeros((10, 64)), "bias": np.zeros(10)}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    opt = SGD(params, grads, lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = Loader(flat(x).reshape(-1, 1, 8, 8), y, 64, seed=0, dtype=np.float64)
    for epoch in range(30):                                      # 690 steps
        for xb, yb in loader.epoch(epoch):
            xb = xb.reshape(len(xb), -1)
            z = xb @ params["weight"].T + params["bias"]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1                      # d(mean cross-entropy)/dz, times B
            grads["weight"][...] = p.T @ xb / len(yb)
            grads["bias"][...] = p.sum(axis=0) / len(yb)
            opt.step()
    acc = np.mean((flat(xt) @ params["weight"].T + params["bias"]).argmax(axis=1) == yt)
    assert acc >= 0.95, f"softmax regression test accuracy {acc:.4f}"


# ---- transforms ---------------------------------------------------------------------------------

def _bilinear_reference(img, out_h, out_w):
    """PyTorch's upsample_bilinear2d (align_corners=False), one output pixel at a time."""
    def src(u, n_in, n_out):
        c = max((u + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(c))
        return i0, min(i0 + 1, n_in - 1), c - i0
    out = np.empty((out_h, out_w))
    for u in range(out_h):
        y0, y1, ly = src(u, img.shape[0], out_h)
        for v in range(out_w):
            x0, x1, lx = src(v, img.shape[1], out_w)
            top = (1 - lx) * img[y0, x0] + lx * img[y0, x1]
            bottom = (1 - lx) * img[y1, x0] + lx * img[y1, x1]
            out[u, v] = (1 - ly) * top + ly * bottom
    return out


@pytest.mark.parametrize("shape,size", [((5, 7), (12, 9)), ((8, 8), 32), ((3, 4), (3, 10))])
def test_resize_upsampling_is_bilinear(shape, size):
    img = np.random.default_rng(0).random(shape)
    y = resize_bilinear(img[None, None], size)[0, 0]
    np.testing.assert_allclose(y, _bilinear_reference(img, *y.shape), rtol=1e-13, atol=1e-15)


def test_resize_downsampling_antialias_and_constants():
    # halving with antialias is the triangle filter of radius 2: weights 1/8, 3/8, 3/8, 1/8
    a = interp_matrix(8, 4)
    np.testing.assert_allclose(a[1, 1:5], [1 / 8, 3 / 8, 3 / 8, 1 / 8], rtol=1e-15)
    np.testing.assert_allclose(interp_matrix(8, 4, antialias=False)[1, 2:4], [0.5, 0.5], rtol=1e-15)
    const = np.full((2, 3, 50, 37), 0.25, dtype=np.float32)
    for size in (8, (64, 20)):
        y = resize_bilinear(const, size)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="size"):
        resize_bilinear(const, 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        resize_bilinear(const[0], 8)


def test_shift_and_scale_geometry():
    x = np.random.default_rng(0).random((1, 2, 6, 6))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(random_shift_scale(x, rng, 0.0, (1.0, 1.0)), x)       # identity
    # a shift of +1 moves the content one pixel down (rows) / right (cols) and fills with zeros
    rows = _shift_scale_matrices(6, np.array([1.0]), np.array([1.0]))[0]
    want = np.zeros_like(x)
    want[..., 1:, :] = x[..., :-1, :]
    np.testing.assert_allclose(rows @ x[0], want[0], rtol=0, atol=0)
    # zoom 2 about the centre m = 2.5: output pixel 0 reads the input at (0 - m)/2 + m = 1.25
    z = _shift_scale_matrices(6, np.array([2.0]), np.array([0.0]))[0]
    np.testing.assert_allclose(z[0], [0, 0.75, 0.25, 0, 0, 0], rtol=1e-15)
    np.testing.assert_allclose(z[5], [0, 0, 0, 0.25, 0.75, 0], rtol=1e-15)
    # zoom 1/2: output pixel 0 reads at -2.5, outside the image, so it is background (zero)
    half = _shift_scale_matrices(6, np.array([0.5]), np.array([0.0]))[0]
    np.testing.assert_array_equal(half[0], 0)
    np.testing.assert_allclose(half[2], [0, 0.5, 0.5, 0, 0, 0], rtol=1e-15)     # reads at 1.5


def test_augmentation_deterministic_and_varied(digits32):
    (x, _), _ = digits32
    aug = RandomShiftScale(2.0, (0.9, 1.1))
    a = aug(x[:64], np.random.default_rng(3))
    np.testing.assert_array_equal(a, aug(x[:64], np.random.default_rng(3)))
    assert not np.array_equal(a, aug(x[:64], np.random.default_rng(4)))
    assert not np.allclose(a, x[:64], atol=0.05)
    assert a.shape == x[:64].shape and a.dtype == np.float32


@pytest.mark.parametrize("flip", [lambda z: z[..., ::-1], lambda z: z[..., ::-1, :]], ids=["lr", "ud"])
def test_augmentation_never_flips(digits32, flip):
    # Digits that change under a mirror must stay closer to themselves than to their mirror image
    # after augmentation; a flip with probability 1/2 would send about half of them the other way.
    (x, _), _ = digits32
    a = RandomShiftScale(2.0, (0.9, 1.1))(x, np.random.default_rng(0))

    def corr(u, v):
        u = u.reshape(len(u), -1) - u.reshape(len(u), -1).mean(1, keepdims=True)
        v = v.reshape(len(v), -1) - v.reshape(len(v), -1).mean(1, keepdims=True)
        return (u * v).sum(1) / np.sqrt((u * u).sum(1) * (v * v).sum(1))

    asymmetric = 1 - corr(x, flip(x)) > 0.3
    assert asymmetric.sum() > 500
    assert np.all(corr(a, x)[asymmetric] > corr(a, flip(x))[asymmetric])


def test_normalize_stats_and_channels():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(20, 2, 5, 5)).astype(np.float32)
    mean, std = channel_stats(x)
    assert mean.shape == (2,) and mean.dtype == np.float32
    y = normalize(x, mean, std)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-5)
    with pytest.raises(ValueError, match="std must be positive"):
        normalize(x, mean, [1.0, 0.0])
    g = replicate_channels(x[:, :1], 3)
    assert g.shape == (20, 3, 5, 5) and np.array_equal(g[:, 2], x[:, 0])
    assert replicate_channels(x, 2) is x
    with pytest.raises(ValueError, match="2 channels"):
        replicate_channels(x, 3)


# ---- the loader ---------------------------------------------------------------------------------

def _index_loader(n=103, **kw):
    # labels are the sample indices, so the batches show exactly which samples were served
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32)
    return Loader(x, np.arange(n), 10, **kw)


def test_loader_covers_each_sample_once_and_shuffles_by_seed():
    loader = _index_loader(seed=5)
    assert len(loader) == 11
    epoch0 = np.concatenate([y for _, y in loader.epoch(0)])
    np.testing.assert_array_equal(np.sort(epoch0), np.arange(103))
    assert not np.array_equal(epoch0, np.arange(103))
    np.testing.assert_array_equal(epoch0, np.concatenate([y for _, y in _index_loader(seed=5).epoch(0)]))
    assert not np.array_equal(epoch0, np.concatenate([y for _, y in loader.epoch(1)]))
    assert not np.array_equal(epoch0, np.concatenate([y for _, y in _index_loader(seed=6).epoch(0)]))
    for xb, yb in loader.epoch(2):
        np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)                  # images travel with labels
    assert len(_index_loader(drop_last=True)) == 10
    np.testing.assert_array_equal(np.concatenate([y for _, y in _index_loader(shuffle=False)]), np.arange(103))


def test_loader_resume_mid_epoch_is_identical(digits32):
    (x, y), _ = digits32
    loader = Loader(x[:200], y[:200], 32, seed=2, augment=RandomShiftScale(), mean=[0.3], std=[0.3], in_chans=3)
    full = list(loader.epoch(4))
    tail = list(loader.epoch(4, start=3))
    assert len(tail) == len(full) - 3
    for (xa, ya), (xb, yb) in zip(full[3:], tail):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert full[0][0].shape == (32, 3, 32, 32) and full[0][0].dtype == np.float32
    np.testing.assert_array_equal(full[0][0][:, 0], full[0][0][:, 2])


def test_loader_errors():
    x = np.zeros((4, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="labels"):
        Loader(x, np.zeros(3, np.int64), 2)
    with pytest.raises(ValueError, match="batch_size"):
        Loader(x, np.zeros(4, np.int64), 0)
    with pytest.raises(ValueError, match="seed"):
        Loader(x, np.zeros(4, np.int64), 2, seed=-1)
    with pytest.raises(ValueError, match="both mean and std"):
        Loader(x, np.zeros(4, np.int64), 2, mean=[0.0])


def test_digits_loaders():
    train, test = digits_loaders(size=32, in_chans=3, batch_size=64, seed=0)
    assert (train.num_samples, test.num_samples) == (1437, 360)
    assert len(train) == 23 and train.classes == tuple("0123456789")
    xb, yb = next(iter(test))
    assert xb.shape == (256, 3, 32, 32) and yb.dtype == np.int64
    # normalised with the training split's statistics
    plain, _ = digits_loaders(size=32, in_chans=1, batch_size=1437, augment=False)
    xs, _ = next(plain.epoch(0))
    assert abs(xs.mean()) < 1e-5 and abs(xs.std() - 1) < 1e-4
    a1, _ = next(train.epoch(0))
    a2, _ = next(digits_loaders(size=32, in_chans=3, batch_size=64, seed=0)[0].epoch(0))
    np.testing.assert_array_equal(a1, a2)


# ---- ImageFolder --------------------------------------------------------------------------------

def _write_tree(root):
    import matplotlib.image as mpimg
    rng = np.random.default_rng(0)
    imgs = {}
    for cls, n in (("cat", 2), ("ant", 3)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, size=(16, 12, 3)) / 255.0
            mpimg.imsave(root / cls / f"{i}.png", img)
            imgs[f"{cls}/{i}.png"] = img
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".DS_Store").write_bytes(b"\0\0")
    return imgs


def test_image_folder_loads_pngs(tmp_path):
    imgs = _write_tree(tmp_path)
    ds = ImageFolder(tmp_path, size=(16, 12))
    assert ds.classes == ["ant", "cat"] and len(ds) == 5
    assert ds.labels.tolist() == [0, 0, 0, 1, 1]
    assert ds.images.shape == (5, 3, 16, 12) and ds.images.dtype == np.float32
    for i, path in enumerate(ds.paths):
        want = imgs[f"{path.parent.name}/{path.name}"].transpose(2, 0, 1)
        np.testing.assert_allclose(ds.images[i], want, atol=1e-6)
    small = ImageFolder(tmp_path, size=8)
    np.testing.assert_allclose(small.images, resize_bilinear(ds.images, 8), atol=1e-6)
    grey = ImageFolder(tmp_path, size=(16, 12), in_chans=1)
    np.testing.assert_allclose(grey.images[:, 0], np.tensordot([0.299, 0.587, 0.114], ds.images, (0, 1)),
                               atol=1e-6)


def test_image_folder_reads_jpeg(tmp_path):
    pytest.importorskip("PIL")
    import matplotlib.image as mpimg
    (tmp_path / "a").mkdir()
    mpimg.imsave(tmp_path / "a" / "x.JPG", np.full((10, 10, 3), [0.2, 0.6, 0.8]))
    ds = ImageFolder(tmp_path, size=5)
    assert ds.images.shape == (1, 3, 5, 5)
    np.testing.assert_allclose(ds.images[0].mean(axis=(1, 2)), [0.2, 0.6, 0.8], atol=0.02)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        ImageFolder(tmp_path / "missing", 8)
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(tmp_path, 8)
    _write_tree(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no images"):
        ImageFolder(tmp_path, 8)
    (tmp_path / "empty" / "bad.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="bad.png"):
        ImageFolder(tmp_path, 8)
    with pytest.raises(ValueError, match="in_chans"):
        ImageFolder(tmp_path, 8, in_chans=2)


# ---- development check against PyTorch (skipped where torch is not installed) -------------------

@pytest.mark.parametrize("size,antialias", [((32, 20), False), ((5, 3), True), ((5, 3), False)])
def test_resize_against_torch_interpolate(size, antialias):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, 3, 11, 7))
    want = torch.nn.functional.interpolate(torch.tensor(x), size=size, mode="bilinear",
                                           align_corners=False, antialias=antialias).numpy()
    np.testing.assert_allclose(resize_bilinear(x, size, antialias=antialias), want, rtol=1e-12, atol=1e-14)
