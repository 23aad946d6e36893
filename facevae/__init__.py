"""FaceVAE: a variational autoencoder of faces, and the tools to use it."""
from .align import align_face
from .latent import lerp, slerp
from .loading import load_model
from .model import FaceVAE
from .preprocess import crop_celeba, to_image, to_tensor

__all__ = ["FaceVAE", "load_model", "crop_celeba", "to_tensor", "to_image", "lerp", "slerp", "align_face"]
