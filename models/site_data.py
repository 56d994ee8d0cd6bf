"""A site's own labelled shelves as a YOLO data set: read DATA.yaml and check every file first.

The layout is ultralytics' usual one::

    DATA.yaml          path: site-shelves     # relative to DATA.yaml's folder, or absolute
                       train: images/train    # image folders under path
                       val: images/val
                       names: {0: item}       # or a list: [item]
    site-shelves/images/train/a.jpg
    site-shelves/labels/train/a.txt            # "class cx cy w h" per item, 0..1; empty: no items

Labels lie beside the images: the last ``images`` folder of an image's path becomes ``labels``
and the suffix ``.txt``. :func:`load_site_data` names every problem at once (a missing folder,
an image without a label, a label line out of range, a class id not in ``names``), each with
its file, line and key, so a person fixes them in one pass rather than one per training run.
No ultralytics is needed to check a data set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecount.yamlcfg import ConfigError, ConfigIssue, read_yaml

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "val")


@dataclass(frozen=True, slots=True)
class SiteData:
    """A checked data set.

    Attributes:
        source: The DATA.yaml read.
        root: The data set's folder (``path``, resolved).
        folders: The image folder of each split (``train``, ``val``).
        images: Image files of each split, sorted.
        names: Class names by id.
    """

    source: Path
    root: Path
    folders: dict[str, Path]
    images: dict[str, list[Path]]
    names: dict[int, str]

    def label_of(self, image: Path) -> Path:
        """The label file of ``image``."""
        return label_path(image)

    def ultralytics_yaml(self) -> str:
        """The data set as ultralytics reads it (absolute paths, nothing else)."""
        names = "\n".join(f"  {i}: {name}" for i, name in sorted(self.names.items()))
        return (
            f"path: {self.root}\ntrain: {self.folders['train'].resolve()}\n"
            f"val: {self.folders['val'].resolve()}\n"
            f"names:\n{names}\n"
        )


def label_path(image: Path) -> Path:
    """Where ultralytics looks for ``image``'s labels: its last ``images`` folder → ``labels``."""
    return beside(image, "labels", ".txt")


def beside(image: Path, folder: str, suffix: str) -> Path:
    """``image``'s companion file: its last ``images`` folder → ``folder``, its suffix changed."""
    parts = list(image.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = folder
            return Path(*parts).with_suffix(suffix)
    return image.with_suffix(suffix)


def read_labels(path: Path) -> list[tuple[int, float, float, float, float]]:
    """The boxes of a label file that :func:`load_site_data` accepted."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            cls, cx, cy, w, h = line.split()
            rows.append((int(cls), float(cx), float(cy), float(w), float(h)))
    return rows


def load_site_data(path: Path) -> SiteData:
    """Read and check DATA.yaml and every image and label it names.

    Raises:
        ConfigError: One :class:`ConfigIssue` per problem (file, line, key, why).
    """
    doc = read_yaml(path)
    where = str(path)
    if not isinstance(doc, dict):
        raise ConfigError([ConfigIssue(where, None, "", "top level must be a mapping")])
    issues: list[ConfigIssue] = []
    root = _root(path, doc, issues)
    names = _names(path, doc, issues)
    folders: dict[str, Path] = {}
    images: dict[str, list[Path]] = {}
    for split in SPLITS:
        folder = _split_folder(path, doc, split, root, issues)
        if folder is not None:
            folders[split] = folder
            images[split] = _images(folder, split, path, doc, issues)
    for split_images in images.values():
        for image in split_images:
            issues.extend(_label_issues(image, names))
    if issues or root is None or names is None:
        raise ConfigError(issues)
    return SiteData(source=path, root=root, folders=folders, images=images, names=names)


def _line(doc: Any, key: str) -> int | None:
    """1-based line of ``key`` in a ruamel mapping, if known."""
    try:
        return int(doc.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):  # a plain dict, or the key is absent
        return None


def _root(path: Path, doc: Any, issues: list[ConfigIssue]) -> Path | None:
    value = doc.get("path")
    if value is None:
        issues.append(ConfigIssue(str(path), None, "path", "missing (the data set's folder)"))
        return None
    root = Path(str(value))
    root = root if root.is_absolute() else (path.parent / root)
    if not root.is_dir():
        issues.append(ConfigIssue(str(path), _line(doc, "path"), "path", f"no folder {root}"))
        return None
    return root.resolve()


def _names(path: Path, doc: Any, issues: list[ConfigIssue]) -> dict[int, str] | None:
    value = doc.get("names")
    line = _line(doc, "names")
    if isinstance(value, list) and value:
        return {i: str(name) for i, name in enumerate(value)}
    if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
        return {int(k): str(v) for k, v in value.items()}
    why = "missing" if value is None else "must be a list of names or a mapping id: name"
    issues.append(ConfigIssue(str(path), line, "names", why))
    return None


def _split_folder(
    path: Path, doc: Any, split: str, root: Path | None, issues: list[ConfigIssue]
) -> Path | None:
    value = doc.get(split)
    line = _line(doc, split)
    if value is None:
        issues.append(ConfigIssue(str(path), None, split, "missing (an image folder)"))
        return None
    if not isinstance(value, str):
        issues.append(ConfigIssue(str(path), line, split, "must be one image folder"))
        return None
    if root is None:
        return None
    folder = root / value
    if not folder.is_dir():
        issues.append(ConfigIssue(str(path), line, split, f"no folder {folder}"))
        return None
    return folder


def _images(
    folder: Path, split: str, path: Path, doc: Any, issues: list[ConfigIssue]
) -> list[Path]:
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        issues.append(ConfigIssue(str(path), _line(doc, split), split, f"no images in {folder}"))
    return found


def _label_issues(image: Path, names: dict[int, str] | None) -> Iterator[ConfigIssue]:
    label = label_path(image)
    if not label.is_file():
        yield ConfigIssue(str(image), None, "", f"image without a label (no {label})")
        return
    for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            why = _line_problem(line, names)
            if why:
                yield ConfigIssue(str(label), number, "", why)


def _line_problem(line: str, names: dict[int, str] | None) -> str | None:
    """Why a label line is wrong, or None."""
    fields = line.split()
    if len(fields) != 5:
        return f"need 5 fields (class cx cy w h), got {len(fields)}: {line.strip()!r}"
    try:
        cls = int(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError:
        return f"not a class id and four numbers: {line.strip()!r}"
    if names is not None and cls not in names:
        return f"class id {cls} not in names ({', '.join(str(k) for k in sorted(names))})"
    if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
        return f"box out of range (cx cy w h must lie in 0..1, w and h above 0): {line.strip()!r}"
    return None
