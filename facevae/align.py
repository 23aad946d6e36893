"""Faces found by their landmarks and warped onto CelebA's framing.

CelebA's aligned images were made by a similarity transform from facial landmarks; align_face
does the same. dlib's HOG detector finds the faces (see find_faces for the retries: rolled
copies, a bigger copy, dlib's CNN detector), dlib's 68-point shape predictor places their
landmarks, and a least-squares similarity (rotation, uniform scale, shift) maps five of them
(eye centres, nose tip, mouth corners, as CelebA used) onto their mean position on CelebA's
aligned training images. The landmarks are then placed again, twice, on the face warped into
that frame, upright and at CelebA's size, which is where the template was measured
(`python -m train.studies.calibrate_align` writes celeba_landmarks.json beside this file), and the
face is cut as crop_celeba cuts a training image. A photo cut close around the face (a
headshot) leaves part of that frame empty: it is completed (complete_frame), and a face
not found is searched for again with a hidden border (HIDDEN_MARGIN).

Model files: dlib's HOG detector is built into dlib; the shape predictor and the CNN detector
ship inside the face-recognition-models package, found with importlib (its __init__ imports
pkg_resources, which current setuptools lacks, so it is never imported).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np
from PIL import Image, ImageDraw

from .photo import load_photo
from .preprocess import CELEBA_SIZE, IMAGE_SIZE, celeba_square, crop_celeba

__all__ = ["Face", "FaceInfo", "align_face", "draw_detections", "find_faces"]

TEMPLATE_FILE = Path(__file__).with_name("celeba_landmarks.json")
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
# Of dlib's 68 points (iBUG 300-W numbering): the eyes' rings, the nose tip and the mouth corners.
LEFT_EYE, RIGHT_EYE, NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = list(range(36, 42)), list(range(42, 48)), 30, 48, 54
DETECT_SIDE = 800  # the detector runs on a copy of the photo this long (HOG finds faces from 80 px)
UPSAMPLES = (0, 1)  # then, if nothing was found, on one twice as big: faces from 40 px of the copy
ROLLS = (0, -30, 30)  # degrees; HOG sees faces rolled by up to about ±20°, the rolled copies the rest
# When HOG finds no confident face: dlib's CNN detector, which also finds faces half turned away,
# in sunglasses or under hair (the 4% of pasted CelebA faces HOG missed), on a copy this long:
# at 640 px it missed 2 of those 16 photos, at 704 none. It takes 2.4 s there on this machine's
# two cores (a photo that needs it, 3.4 s in all, against 45 ms for most), so only then.
CNN_SIDE = 800
CONFIDENT_SCORE = 0.5  # HOG scores at least this count in full; weaker ones rank as proportionally smaller
# Beside a face scoring at least this, weaker detections are dropped: on 240 pasted CelebA faces
# the true face scored 0.21 at the least (1.66 median), the false ones on clothes and noise 0.10.
WEAK_SCORE = 0.2
# A photo in which no face was found (a headshot, cut close around the face, may be one) is
# searched again upright with a hidden border of this share of its long side, on copies no
# bigger than the usual ones; the CNN detector too when the photo is small enough that it runs
# on the photo at full size (a big headshot has a big face: HOG finds that). On 200 CelebA faces
# cut forehead to chin (train.studies.measure_headshots) this finds 3 more of the 80×96 ones;
# a border of 0.1 found one fewer of those.
HIDDEN_MARGIN = 0.25
# Beyond the photo, its edge pixels repeat blurred by σ = this × the distance from it (in
# pixels of CelebA's frame), between fixed σs: streaks, the bare repeated pixels, are the
# one thing in such a frame the model has never seen. See complete_frame.
BLUR_GROWTH = 1.0
BLUR_SIGMAS = (1, 2, 4, 8, 16, 32)
# and get the photo's grain back (its pixel noise, at least this many levels): a blurred area
# without it looks flat and, far out, holds long runs of one pixel value, a streak again.
LEAST_GRAIN = 1.0
# Filled, a share of the aligned face below this is not told (a few rows, as where a crop
# reaches just past the top of the head): the example astronaut's 0.3%, Grace Hopper's 1.4%.
NOTICEABLE_FILL = 0.01
CROP_ROWS = slice(18, 200)  # the frame's rows that crop_celeba's square (20–197) and its resampling read
REFIT_ROUNDS = 2  # landmarks placed again on the face in CelebA's frame (see fit_to_template)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """CelebA's five landmarks (eye centres, nose tip, mouth corners) from dlib's 68."""
    return np.stack([landmarks[LEFT_EYE].mean(0), landmarks[RIGHT_EYE].mean(0), landmarks[NOSE_TIP],
                     landmarks[MOUTH_LEFT], landmarks[MOUTH_RIGHT]])


@functools.cache
def template() -> tuple[np.ndarray, dlib.rectangle]:
    """The five landmarks' mean position in CelebA's 178×218 aligned images, and the detector box
    the landmarks are placed from in that frame."""
    data = json.loads(TEMPLATE_FILE.read_text())
    return five_points(np.array(data["landmarks"])), dlib.rectangle(*(round(v) for v in data["box"]))


def model_file(name: str) -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("dlib's face models are missing: pip install face-recognition-models==0.3.0")
    return str(Path(spec.origin).parent / "models" / name)


@functools.cache
def _predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(model_file(PREDICTOR_FILE))


@functools.cache
def _cnn_detector() -> dlib.cnn_face_detection_model_v1:
    return dlib.cnn_face_detection_model_v1(model_file(CNN_DETECTOR_FILE))


_predictor_lock, _cnn_lock = threading.Lock(), threading.Lock()
_per_thread = threading.local()


def _detector():
    """This thread's HOG detector (the app aligns photos for several people at once)."""
    if not hasattr(_per_thread, "detector"):
        _per_thread.detector = dlib.get_frontal_face_detector()
    return _per_thread.detector


def place_landmarks(image: np.ndarray, box: dlib.rectangle) -> np.ndarray:
    """dlib's 68 landmarks (68×2, pixels) of the face in box."""
    with _predictor_lock:
        shape = _predictor()(image, box)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@dataclass
class Face:
    landmarks: np.ndarray  # 68×2 in the photo's pixels
    score: float  # the detector's confidence
    matrix: np.ndarray  # 2×3 similarity from the photo's pixels to CelebA's 178×218 frame

    @property
    def size(self) -> float:
        """The distance between the eyes, in the photo's pixels."""
        left, right = five_points(self.landmarks)[:2]
        return float(np.hypot(*(right - left)))

    @property
    def roll(self) -> float:
        """How far the face is turned in the picture plane, in degrees (positive: clockwise)."""
        return float(np.degrees(np.arctan2(self.matrix[0, 1], self.matrix[0, 0])))

    @property
    def crop_corners(self) -> np.ndarray:
        """The corners (4×2, photo pixels) of the square cut from the photo, clockwise from top left."""
        return to_photo(self.matrix, square_corners(*CELEBA_SIZE))


@dataclass
class FaceInfo:
    found: bool  # False: no face was detected and a centre crop was used
    faces: list[Face]  # the detected faces, the best first (see rank)
    chosen: int | None  # index into faces
    crop_corners: np.ndarray  # 4×2: the square taken from the photo, clockwise from top left
    photo_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)  # things worth telling the user
    # size×size, 0 to 1: how much of each pixel of the aligned face the photo covers, where the
    # frame was completed beyond the photo (see complete_frame); None where the photo covers it all
    photo_area: np.ndarray | None = None

    @property
    def completed(self) -> bool:
        """Whether a noticeable part of the aligned face lies beyond the photo (and was filled)."""
        return self.photo_area is not None and float((1 - self.photo_area).mean()) >= NOTICEABLE_FILL

    @property
    def crop_box(self) -> tuple[float, float, float, float]:
        """The crop's bounds (left, top, right, bottom); the square itself when it is upright."""
        (left, top), (right, bottom) = self.crop_corners.min(0), self.crop_corners.max(0)
        return float(left), float(top), float(right), float(bottom)

    @property
    def message(self) -> str:
        if not self.found:
            return " ".join(["No face found: used a centre crop, so the result may not look like a face.", *self.notes])
        head = f"Found {len(self.faces)} face{'s' if len(self.faces) > 1 else ''}; using face {self.chosen + 1}"
        roll = self.faces[self.chosen].roll
        head += f", turned {abs(roll):.0f}° in the photo and straightened." if abs(roll) >= 5 else "."
        if self.completed:
            head += " The photo ends close to the face: the frame was completed beyond your photo (outlined in the thumbnail)."
        return " ".join([head, *self.notes])


def square_corners(width: int, height: int) -> np.ndarray:
    """The corners of the centred square that crop_celeba cuts from a width×height image."""
    left, top, right, bottom = celeba_square(width, height)
    return np.array([(left, top), (right, top), (right, bottom), (left, bottom)], dtype=np.float64)


def to_photo(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points of the frame that matrix maps into, back in the photo's pixels."""
    return cv2.transform(points[None], cv2.invertAffineTransform(matrix))[0]


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2×3 matrix of the rotation, uniform scale and shift taking the points source (N×2)
    closest to target (N×2) in the least-squares sense."""
    x, y = source.T
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    rows = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    (c, s, tx, ty), *_ = np.linalg.lstsq(rows, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)
    return np.array([[c, -s, tx], [s, c, ty]])


def warp(photo: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The photo seen through the 2×3 similarity `matrix` (photo pixels -> output pixels), size
    (width, height); outside the photo, OpenCV's border mode (by default its edge pixels repeat:
    the landmarks are placed on this). A matrix that shrinks first has the
    part of the photo it reads shrunk by area averaging: warping straight from a big photo would
    alias, and the model cannot reconstruct aliased detail."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.8:
        corners = to_photo(matrix, np.array([(0, 0), (size[0], 0), (size[0], size[1]), (0, size[1])], np.float64))
        left, top = np.maximum(np.floor(corners.min(0)).astype(int) - 2, 0)
        right, bottom = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, (photo.shape[1], photo.shape[0]))
        if right - left >= 2 and bottom - top >= 2:
            region = photo[top:bottom, left:right]
            smaller = cv2.resize(region, (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))),
                                interpolation=cv2.INTER_AREA)
            fx, fy = smaller.shape[1] / region.shape[1], smaller.shape[0] / region.shape[0]
            # smaller's pixel (u, v) is photo pixel (left + (u + 0.5) / fx - 0.5, top + (v + 0.5) / fy - 0.5)
            to_region = np.array([[1 / fx, 0, left + 0.5 / fx - 0.5], [0, 1 / fy, top + 0.5 / fy - 0.5], [0, 0, 1]])
            photo, matrix = smaller, matrix @ to_region
    return cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_LINEAR, borderMode=border)


def photo_share(matrix: np.ndarray, photo_size: tuple[int, int], size: tuple[int, int] = CELEBA_SIZE) -> np.ndarray:
    """How much of each pixel of the frame (H×W float32, 0 to 1) the photo covers, the frame
    being what matrix maps the photo (photo_size: width, height) into."""
    covered = np.full(photo_size[::-1], 255, np.uint8)
    return cv2.warpAffine(covered, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0).astype(np.float32) / 255


def distance_outside(share: np.ndarray) -> np.ndarray:
    """Each frame pixel's distance (in pixels) from the nearest one the photo covers in full."""
    return cv2.distanceTransform((share < 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def growing_blur(frame: np.ndarray, distance: np.ndarray, growth: float = BLUR_GROWTH) -> np.ndarray:
    """frame (float32) blurred by σ = growth × distance, pixel by pixel: each pixel a blend of
    the two copies blurred by the nearest of BLUR_SIGMAS."""
    sigmas = np.array((0.0, *BLUR_SIGMAS))
    wanted = np.clip(distance * growth, 0, sigmas[-1])
    needed = sigmas[: int(np.searchsorted(sigmas, wanted.max())) + 1]
    if len(needed) == 1:
        return frame
    levels = np.stack([frame] + [blurred(frame, sigma) for sigma in needed[1:]])
    lower = np.clip(np.searchsorted(needed, wanted, side="right") - 1, 0, len(needed) - 2)
    weight = ((wanted - needed[lower]) / (needed[lower + 1] - needed[lower]))[..., None].astype(np.float32)
    rows, columns = np.indices(wanted.shape)
    return (1 - weight) * levels[lower, rows, columns] + weight * levels[lower + 1, rows, columns]


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur; past σ 2 one of σ 2 on a copy sigma/2 times smaller, enlarged again: close
    enough for a background, and 2 ms where a σ-32 kernel takes 90."""
    if sigma <= 2:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    height, width = image.shape[:2]
    factor = sigma / 2
    small = cv2.resize(image, (max(1, round(width / factor)), max(1, round(height / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), 2), (width, height), interpolation=cv2.INTER_LINEAR)


def complete_frame(photo: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The photo warped by matrix into CelebA's 178×218 frame, and how much of each of the
    frame's pixels the photo covers (None when it covers all crop_celeba reads: the warp as it
    is). Where the crop reaches beyond the photo, the frame is completed: the edge pixels repeat
    outward, blurred the more the further out (growing_blur), and the photo's own pixels are
    kept as they are."""
    frame = warp(photo, matrix, CELEBA_SIZE)
    share = photo_share(matrix, (photo.shape[1], photo.shape[0]))
    if share[CROP_ROWS].min() >= 1:
        return frame, None
    frame = frame.astype(np.float32)
    filled = growing_blur(frame, distance_outside(share)) + grain(frame, share)
    covered = share[..., None]
    return (covered * frame + (1 - covered) * filled).round().clip(0, 255).astype(np.uint8), share


def grain(frame: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Noise like the photo's own (its pixels' deviation from their neighbours, robustly), the
    same for the same photo."""
    detail = (frame - cv2.GaussianBlur(frame, (0, 0), 1.0))[share >= 1]
    level = max(LEAST_GRAIN, 1.4826 * float(np.median(np.abs(detail[::7]))) if detail.size else 0.0)
    return level * unit_noise(frame.shape)


@functools.cache
def unit_noise(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def rolled(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """image rolled by degrees about its centre on a canvas big enough to hold all of it, and the
    2×3 matrix from image pixels to the rolled copy's."""
    if degrees == 0:
        return image, np.array([[1.0, 0, 0], [0, 1.0, 0]])
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos)))
    matrix[:, 2] += np.array(size) / 2 - np.array([width, height]) / 2
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), matrix


def fit_to_template(photo: np.ndarray, landmarks: np.ndarray, score: float, rounds: int = REFIT_ROUNDS) -> Face:
    """A face from rough landmarks: fit the similarity, warp the face into CelebA's frame, place
    the landmarks again there (upright, at the size and box where the template was measured)
    and fit again on them; a few rounds, as landmarks placed on a face turned 30° or more come
    out turned less than it is."""
    points, box = template()
    matrix = similarity(five_points(landmarks), points)
    for _ in range(rounds):
        landmarks = to_photo(matrix, place_landmarks(warp(photo, matrix, CELEBA_SIZE), box))
        matrix = similarity(five_points(landmarks), points)
    return Face(landmarks, score, matrix)


def find_faces(photo: np.ndarray, upsamples=UPSAMPLES, rolls=ROLLS, detect_side: int = DETECT_SIDE,
               cnn: bool = True, margin: float = 0.0) -> list[Face]:
    """The faces in an RGB uint8 photo (H×W×3), the best first (see rank).

    HOG runs on a copy at most detect_side long; when it finds nothing confident, on copies
    rolled by each of rolls, then on bigger copies (upsamples), and last (cnn) the CNN detector.
    margin: the copies get a hidden border (see shrunk), for a face that fills the photo."""
    faces: list[Face] = []
    small, zoom = shrunk(photo, detect_side, margin)
    for upsample in upsamples:
        for degrees in rolls:
            copy, matrix = rolled(small, degrees)
            boxes, scores, _ = _detector().run(copy, upsample, 0.0)
            faces += faces_from(photo, copy, matrix @ zoom, boxes, scores)
            if any(face.score >= CONFIDENT_SCORE for face in faces):
                return rank(faces)
    if cnn:
        small, zoom = shrunk(photo, CNN_SIDE, margin)
        with _cnn_lock:
            found = _cnn_detector()(small, 0)
        faces += faces_from(photo, small, zoom[:2], [d.rect for d in found], [d.confidence for d in found])
    return rank(faces)


def shrunk(photo: np.ndarray, long_side: int, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The photo at most long_side long (area-averaged), and the 3×3 matrix from photo pixels to
    it. margin: with a border this share of the photo's long side all round, within long_side
    (the edge pixels repeated: dlib's detector and landmarks want some room around a face,
    which a photo cut close around one lacks)."""
    zoom = min(1.0, long_side / (max(photo.shape[:2]) * (1 + 2 * margin)))
    small = cv2.resize(photo, (round(photo.shape[1] * zoom), round(photo.shape[0] * zoom)), interpolation=cv2.INTER_AREA)
    scale_x, scale_y = small.shape[1] / photo.shape[1], small.shape[0] / photo.shape[0]
    border = round(margin * max(small.shape[:2]))
    if border:
        small = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_REPLICATE)
    return small, np.array([[scale_x, 0, border], [0, scale_y, border], [0, 0, 1]])


def faces_from(photo: np.ndarray, copy: np.ndarray, to_copy: np.ndarray, boxes, scores) -> list[Face]:
    """Faces from detector boxes in a copy of the photo (to_copy: 2×3, photo -> copy pixels)."""
    return [fit_to_template(photo, to_photo(to_copy, place_landmarks(copy, box)), score)
            for box, score in zip(boxes, scores)]


def rank(faces: list[Face]) -> list[Face]:
    """The faces by size, a weak detection (texture can fool the detector) counting as
    proportionally smaller, and dropped beside a stronger one. One face found twice (upright and
    on a rolled copy) is kept once: two people's faces are at least two eye distances apart."""
    if any(face.score >= WEAK_SCORE for face in faces):
        faces = [face for face in faces if face.score >= WEAK_SCORE]
    ordered = sorted(faces, key=lambda f: f.size * min(1.0, max(f.score, 0.01) / CONFIDENT_SCORE), reverse=True)
    kept: list[Face] = []
    for face in ordered:
        centre = face.landmarks.mean(0)
        if all(np.hypot(*(centre - other.landmarks.mean(0))) > other.size for other in kept):
            kept.append(face)
    return kept


def crop_square(img: Image.Image, box, size: int = IMAGE_SIZE) -> Image.Image:
    """Resample the square box (which may reach past the photo's edges) to size×size; the
    parts outside the photo repeat its edge pixels, as a face cut off by the frame would."""
    left, top, right, bottom = box
    outside = max(-left, -top, right - img.width, bottom - img.height)
    if outside > 0:
        pad = int(outside) + 1
        padded = np.pad(np.asarray(img), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        img, box = Image.fromarray(padded), (left + pad, top + pad, right + pad, bottom + pad)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)


def align_face(source, face_index: int | None = None, size: int = IMAGE_SIZE, quick: bool = False
               ) -> tuple[Image.Image, FaceInfo]:
    """Any photo -> (size×size RGB face framed as the model was trained, FaceInfo).

    Several faces: the best (see rank) unless face_index picks another. No face: searched again
    with a hidden border (HIDDEN_MARGIN), then a centre crop, reported in FaceInfo. A crop
    reaching beyond the photo is completed there (complete_frame; FaceInfo.photo_area).
    quick: one upright search on the photo as it is (a live video frame: the next frame comes
    soon). Raises PhotoError for unusable files (see load_photo)."""
    img, notes = load_photo(source)
    photo = np.asarray(img)
    faces = find_faces(photo, upsamples=(0,), rolls=(0,), cnn=False) if quick else find_faces(photo)
    if not faces and not quick:
        faces = find_faces(photo, rolls=(0,), margin=HIDDEN_MARGIN,
                           cnn=max(photo.shape[:2]) * (1 + 2 * HIDDEN_MARGIN) <= CNN_SIDE)
    if not faces:
        return (crop_square(img, celeba_square(*img.size), size),
                FaceInfo(False, [], None, square_corners(*img.size), img.size, notes))
    chosen = face_index if face_index is not None and 0 <= face_index < len(faces) else 0
    if face_index is not None and chosen != face_index:
        notes.append(f"There is no face {face_index + 1}; used face 1.")
    face = faces[chosen]
    frame, share = complete_frame(photo, face.matrix)
    info = FaceInfo(True, faces, chosen, face.crop_corners, img.size, notes)
    if share is not None:
        info.photo_area = np.asarray(crop_celeba(Image.fromarray((share * 255).round().astype(np.uint8)), size),
                                     np.float32)[..., 0] / 255
    return crop_celeba(Image.fromarray(frame), size), info


def draw_detections(img: Image.Image, info: FaceInfo, max_side: int = 320) -> Image.Image:
    """A thumbnail of the photo with each face's landmarks and crop square (yellow) and the
    chosen crop in green. When the frame was completed beyond the photo, the thumbnail shows
    all of the crop, grey beyond the photo, and outlines the photo's area in white."""
    left, top, right, bottom = 0.0, 0.0, float(img.width), float(img.height)
    if info.completed:
        crop_left, crop_top, crop_right, crop_bottom = info.crop_box
        left, top, right, bottom = min(left, crop_left), min(top, crop_top), max(right, crop_right), max(bottom, crop_bottom)
    scale = min(1.0, max_side / max(right - left, bottom - top))
    photo = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), reducing_gap=2.0)
    offset = np.array([-left, -top]) * scale  # photo pixels p are at p * scale + offset
    thumb = Image.new("RGB", (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale))), (128, 128, 128))
    thumb.paste(photo, tuple(np.round(offset).astype(int)))
    draw = ImageDraw.Draw(thumb)

    def at(points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in points * scale + offset]

    if info.completed:
        x0, y0 = np.round(offset).astype(int)
        draw.rectangle([x0, y0, x0 + photo.width - 1, y0 + photo.height - 1], outline=(255, 255, 255), width=2)
    for i, face in enumerate(info.faces):
        if i != info.chosen:
            draw.polygon(at(face.crop_corners), outline=(255, 200, 0), width=2)
        for x, y in at(five_points(face.landmarks)):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(255, 60, 60))
    draw.polygon(at(info.crop_corners), outline=(0, 220, 0), width=3)
    return thumb
