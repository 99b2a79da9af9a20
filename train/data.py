"""Training data: image folders or Hub datasets, deterministic augmentation, an exactly resumable sampler.

Every random choice in the data pipeline is a function of (seed, step, rank, position), never of a global RNG, so a
run resumed at step N sees exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from cst.errors import StyleTransferError
from cst.frontend import list_images
from cst.imageio import pil_to_tensor

logger = logging.getLogger(__name__)


class ImageSource:
    """A list of images: files under a folder (recursive), or the image column of a Hub dataset."""

    def __init__(self, folder: str | None = None, dataset_id: str | None = None, split: str = "train",
                 image_column: str | None = None):
        assert (folder is None) != (dataset_id is None), "give exactly one of folder / dataset_id"
        self.skipped = 0  # broken files seen (at scan time or at decode time)
        self.name = folder or dataset_id
        if folder is not None:
            try:
                candidates = list_images(folder, "image", recursive=True)
            except StyleTransferError as err:
                raise SystemExit(f"error: {err}") from None
            self.files = []
            for path in candidates:  # header check only: cheap, catches empty and non-image files
                try:
                    with Image.open(path) as img:
                        img.size
                    self.files.append(path)
                except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, not fatal
                    self.skipped += 1
                    logger.warning("skipping unreadable image %s (%s)", path, type(err).__name__)
            self.dataset = None
        else:
            import datasets  # optional dependency, only for Hub datasets

            self.dataset = datasets.load_dataset(dataset_id, split=split)
            self.image_column = image_column or next(
                (k for k, f in self.dataset.features.items() if type(f).__name__ == "Image"), None)
            if self.image_column is None:
                raise SystemExit(f"error: dataset {dataset_id} has no image column")
            self.files = None
        if len(self) == 0:
            raise SystemExit(f"error: no readable images in {self.name}")

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.dataset)

    def open(self, index: int) -> Image.Image:
        if self.files is not None:
            with Image.open(self.files[index]) as img:
                return img.convert("RGB")
        return self.dataset[index][self.image_column].convert("RGB")


def random_resized_crop(img: Image.Image, size: int, generator: torch.Generator,
                        scale: tuple[float, float] = (0.25, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        flip: bool = True) -> torch.Tensor:
    """torchvision's RandomResizedCrop + horizontal flip, driven by `generator`. Returns (3, size, size) in [0, 1]."""
    left, top, cw, ch = crop_box(*img.size, generator, scale, ratio)
    crop = img.crop((left, top, left + cw, top + ch)).resize((size, size), Image.BICUBIC)
    x = pil_to_tensor(crop)[0]
    if flip and torch.rand(1, generator=generator).item() < 0.5:
        x = x.flip(2)
    return x


def crop_box(w: int, h: int, generator: torch.Generator, scale: tuple[float, float] = (0.25, 1.0),
             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a RandomResizedCrop box in a w x h image, from four draws of `generator`."""
    area = w * h
    u = torch.rand(4, generator=generator).tolist()
    for attempt in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1]
        cw, ch = round(math.sqrt(target * math.exp(log_r))), round(math.sqrt(target / math.exp(log_r)))
        if 0 < cw <= w and 0 < ch <= h:
            break
        u[0] = u[0] * 0.7  # shrink and retry deterministically
    else:
        cw = ch = min(w, h)
    left, top = int(u[2] * (w - cw + 1)), int(u[3] * (h - ch + 1))
    return min(left, w - cw), min(top, h - ch), cw, ch


def thumbnail(img: Image.Image, side: int) -> torch.Tensor:
    """The whole image squeezed to side x side, (1, 3, side, side) in [0, 1]: the view the light generator's style
    statistics come from at inference (as cst resizes a style image)."""
    return pil_to_tensor(img.resize((side, side), Image.BICUBIC, reducing_gap=2.0))


class AugmentedImages(Dataset):
    """Map-style dataset keyed by (index, seed): the seed fixes the crop and flip of that sample.

    With `thumbnail_size`, each item is (crop, thumbnail): the thumbnail is the whole image resized to a square of
    that side (the view the light generator's style statistics come from at inference), the crop what losses see."""

    def __init__(self, source: ImageSource, size: int, scale: tuple[float, float] = (0.25, 1.0),
                 thumbnail_size: int | None = None):
        self.source, self.size, self.scale, self.thumbnail_size = source, size, scale, thumbnail_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, seed = key
        for attempt in range(len(self.source)):  # a file broken at decode time: take the next one
            i = (index + attempt) % len(self.source)
            try:
                img = self.source.open(i)
            except Exception as err:  # noqa: BLE001
                self.source.skipped += 1
                logger.warning("skipping undecodable image #%d (%s)", i, type(err).__name__)
                continue
            crop = random_resized_crop(img, self.size, torch.Generator().manual_seed(seed), scale=self.scale)
            if self.thumbnail_size is None:
                return crop
            return crop, thumbnail(img, self.thumbnail_size)[0]
        raise RuntimeError(f"no decodable image in {self.source.name}")


class DeviceImages:
    """`--data-on-device`: every image decoded once and kept on `device` as 8-bit (and, with `thumbnail_size`, its
    whole-image thumbnail, made once); `batch(keys)` cuts the crops there. The same boxes and flips as
    `AugmentedImages` for the same (index, seed) keys; the resampling is torch's antialiased bicubic rather than
    PIL's. No per-sample work on the CPU: for GPUs whose machine has few CPU cores for data loading."""

    def __init__(self, source: ImageSource, size: int, scale: tuple[float, float], device: torch.device,
                 thumbnail_size: int | None = None):
        self.size, self.scale, self.thumbnail_size = size, scale, thumbnail_size
        self.images: list[torch.Tensor] = []
        self.thumbnails: list[torch.Tensor] = []
        # source index -> stored image; a broken file's index maps to the next decodable one, as AugmentedImages does
        self.slot: list[int | None] = []
        for i in range(len(source)):
            try:
                img = source.open(i)
            except Exception as err:  # noqa: BLE001 - a file broken at decode time is skipped
                source.skipped += 1
                logger.warning("skipping undecodable image #%d (%s)", i, type(err).__name__)
                self.slot.append(None)
                continue
            self.slot.append(len(self.images))
            self.images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).to(device))
            if thumbnail_size:
                self.thumbnails.append(thumbnail(img, thumbnail_size).to(device))
        if not self.images:
            raise RuntimeError(f"no decodable image in {source.name}")
        for i in reversed(range(len(self.slot))):  # fill the broken ones' slots with the next decodable (wrapping)
            if self.slot[i] is None:
                after = next(j for j in [*range(i + 1, len(self.slot)), *range(i)] if self.slot[j] is not None)
                self.slot[i] = self.slot[after]

    def batch(self, keys: list[tuple[int, int]]):
        crops, thumbs = [], []
        for index, seed in keys:
            i = self.slot[index]
            image = self.images[i]
            generator = torch.Generator().manual_seed(seed)
            left, top, cw, ch = crop_box(image.shape[2], image.shape[1], generator, self.scale)
            crop = image[None, :, top:top + ch, left:left + cw].float() / 255.0
            crop = torch.nn.functional.interpolate(crop, size=(self.size, self.size), mode="bicubic",
                                                   align_corners=False, antialias=True).clamp(0, 1)
            if torch.rand(1, generator=generator).item() < 0.5:
                crop = crop.flip(3)
            crops.append(crop)
            if self.thumbnail_size:
                thumbs.append(self.thumbnails[i])
        crops = torch.cat(crops)
        return (crops, torch.cat(thumbs)) if self.thumbnail_size else crops


class StepSampler(Sampler):
    """Yields, for steps start_step, start_step+1, ..., this process's batch of (index, seed) keys.

    The global order is a fresh permutation per epoch (seeded by (seed, epoch)); a global batch of
    batch_size * world_size items is split by rank. Nothing depends on how many steps ran before: resume is exact.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0, salt: int = 0):
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.start_step, self.salt = rank, world_size, start_step, salt

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 7919 + self.salt)
        return torch.randperm(self.num_items, generator=g)

    def __iter__(self):
        global_batch = self.batch_size * self.world_size
        step = self.start_step
        cached_epoch, perm = -1, None
        while True:
            keys = []
            for j in range(self.batch_size):
                position = step * global_batch + self.rank * self.batch_size + j
                epoch, offset = divmod(position, self.num_items)
                if epoch != cached_epoch:
                    cached_epoch, perm = epoch, self._permutation(epoch)
                keys.append((int(perm[offset]), self.seed * 1_000_003 + position * 31 + self.salt))
            yield keys
            step += 1

    def __len__(self) -> int:  # infinite in practice; DataLoader only needs a number
        return 2 ** 62
