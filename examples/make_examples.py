"""Regenerate the example photos from images that ship in scikit-image and matplotlib (see
README.md here).

    .venv/bin/pip install matplotlib      # only for this script: Grace Hopper's portrait
    .venv/bin/python examples/make_examples.py
"""
from pathlib import Path

from matplotlib.cbook import get_sample_data
from PIL import Image, ImageEnhance
from skimage import data

HERE = Path(__file__).resolve().parent


def save(image: Image.Image, *parts: str) -> None:
    path = HERE.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, quality=90)


astronaut = Image.fromarray(data.astronaut())                    # NASA, public domain
mirrored = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
close_up = ImageEnhance.Brightness(astronaut.crop((96, 0, 352, 256))).enhance(1.15)
cameraman = Image.fromarray(data.camera())                       # Lav Varshney, CC0
cameraman_close = cameraman.crop((96, 32, 352, 288))
hopper = Image.open(get_sample_data("grace_hopper.jpg"))          # U.S. Navy, public domain
hopper_mirrored = ImageEnhance.Brightness(
    hopper.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).enhance(1.1)

save(astronaut, "pairs", "1-astronaut-and-mirror", "a.jpg")
save(mirrored, "pairs", "1-astronaut-and-mirror", "b.jpg")
save(astronaut, "pairs", "2-astronaut-and-cameraman", "a.jpg")
save(cameraman, "pairs", "2-astronaut-and-cameraman", "b.jpg")
save(cameraman, "pairs", "3-cameraman-and-close-up", "a.jpg")
save(cameraman_close, "pairs", "3-cameraman-and-close-up", "b.jpg")
save(astronaut, "triplets", "1-astronaut-close-up-cameraman", "1.jpg")
save(close_up, "triplets", "1-astronaut-close-up-cameraman", "2.jpg")
save(cameraman, "triplets", "1-astronaut-close-up-cameraman", "3.jpg")
save(hopper, "pairs", "4-hopper-and-astronaut", "a.jpg")
save(astronaut, "pairs", "4-hopper-and-astronaut", "b.jpg")
save(hopper, "pairs", "5-hopper-and-mirror", "a.jpg")
save(hopper_mirrored, "pairs", "5-hopper-and-mirror", "b.jpg")
save(hopper, "triplets", "2-hopper-mirror-astronaut", "1.jpg")
save(hopper_mirrored, "triplets", "2-hopper-mirror-astronaut", "2.jpg")
save(astronaut, "triplets", "2-hopper-mirror-astronaut", "3.jpg")
save(astronaut, "triplets", "3-astronaut-hopper-mirror", "1.jpg")
save(hopper, "triplets", "3-astronaut-hopper-mirror", "2.jpg")
save(mirrored, "triplets", "3-astronaut-hopper-mirror", "3.jpg")
