"""UTKFace portraits: diverse faces (all ages, five race groups, both genders) for training and
for measuring likeness group by group.

    python -m train.utkface --data ../shared/data/utkface     # align and cache both parts, print the counts

The folder holds images/ and labels.csv (file,age,gender,race; gender 0 male, 1 female; race 0
White, 1 Black, 2 Asian, 3 Indian, 4 Others, as UTKFace labels them). The portraits are 200×200
chips cut close around the face: facevae.data's "align" cache brings each to CelebA's framing with
align_face, the frame completed beyond the chip, and keeps how much of each pixel the chip covers.

A validation part, VAL_PER_GROUP portraits of each race × gender (500 in all), is held out by a
fixed seed and is never trained on: the group report (train.studies.group_likeness) scores it.
A label row that does not parse is skipped with a message and a count; so, in the cache, is an
unreadable image or one in which no face is found.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from facevae.data import CachedImages, cache_images

RACES = ("White", "Black", "Asian", "Indian", "Others")
GENDERS = ("male", "female")
AGE_BANDS = ((0, 12), (13, 19), (20, 39), (40, 59), (60, 200))  # inclusive; the last reads "60+"
VAL_PER_GROUP = 50  # per race × gender: 500 held out
SPLIT_SEED = 0


@dataclass(frozen=True)
class Portrait:
    file: Path
    age: int
    gender: int  # index into GENDERS
    race: int  # index into RACES

    @property
    def groups(self) -> dict[str, str]:
        """The groups the report prints this portrait in: {"race": ..., "age": ..., "gender": ...}."""
        return {"race": RACES[self.race], "age": age_band(self.age), "gender": GENDERS[self.gender]}


def age_band(age: int) -> str:
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}+" if high >= 200 else f"{low}-{high}"
    raise ValueError(f"age {age} is in no band")


def read_portraits(root: str | Path) -> list[Portrait]:
    """The labelled portraits of a UTKFace folder, in labels.csv's order. Rows that do not parse
    (a missing field, an age that is not a whole number from 0 to 150, a gender or race out of
    range) or that name no file in images/ are skipped, with one message that counts them."""
    root = Path(root)
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"no labels.csv in {root} (is it a UTKFace folder?)")
    portraits, bad = [], []
    with labels.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                portrait = Portrait(root / "images" / row["file"], int(row["age"]), int(row["gender"]), int(row["race"]))
                if not (0 <= portrait.age <= 150 and portrait.gender in (0, 1) and 0 <= portrait.race < len(RACES)):
                    raise ValueError("a value out of range")
                if not portrait.file.is_file():
                    raise ValueError(f"no file {portrait.file.name}")
            except (KeyError, TypeError, ValueError) as error:
                bad.append(f"line {line} ({error})")
                continue
            portraits.append(portrait)
    if bad:
        print(f"{labels}: skipped {len(bad)} of {len(bad) + len(portraits)} label rows that do not parse: "
              f"{'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}", file=sys.stderr)
    return portraits


def split(portraits: list[Portrait], per_group: int = VAL_PER_GROUP, seed: int = SPLIT_SEED) -> dict[str, list[Portrait]]:
    """{"train": ..., "val": ...}: val holds per_group portraits of each race × gender, drawn by
    a fixed seed (a group with fewer gives half of them); train holds the rest."""
    shuffled = portraits[:]
    random.Random(seed).shuffle(shuffled)
    val = []
    for race in range(len(RACES)):
        for gender in range(len(GENDERS)):
            group = [p for p in shuffled if p.race == race and p.gender == gender]
            val += group[: min(per_group, len(group) // 2)]
    held_out = set(val)
    return {"train": [p for p in portraits if p not in held_out], "val": sorted(val, key=lambda p: p.file)}


@dataclass
class AlignedPortraits:
    """Portraits aligned to CelebA's framing: the cache (faces, coverage) and each row's labels."""
    images: CachedImages
    portraits: list[Portrait]  # one per cached row: those whose image was read and whose face was found


def aligned(portraits: list[Portrait], size: int = 128, cache_dir=None, workers: int | None = None) -> AlignedPortraits:
    """The portraits aligned once into facevae.data's "align" cache (reused afterwards)."""
    cached = cache_images([p.file for p in portraits], size, cache_dir, workers, preprocessing="align")
    by_file = {str(p.file): p for p in portraits}
    return AlignedPortraits(cached, [by_file[f] for f in cached.files])


def load_part(root: str | Path, part: str, size: int = 128, cache_dir=None) -> AlignedPortraits:
    """The train or val part of a UTKFace folder, aligned and cached."""
    return aligned(split(read_portraits(root))[part], size, cache_dir)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a UTKFace folder (images/, labels.csv)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    parts = split(read_portraits(args.data))
    for name, portraits in parts.items():
        part = aligned(portraits, workers=args.workers)
        completed = (part.images.coverage < 255).any((1, 2)).mean() if len(part.portraits) else 0.0
        print(f"{name}: {len(part.portraits)} of {len(portraits)} aligned ({part.images.skipped} skipped); "
              f"{completed:.0%} have part of the frame completed beyond the chip", flush=True)


if __name__ == "__main__":
    main()
