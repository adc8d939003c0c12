"""Regenerate the example photos from images that ship in scikit-image (see README.md here).

    .venv/bin/python examples/make_examples.py
"""
from pathlib import Path

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

save(astronaut, "pairs", "1-astronaut-and-mirror", "a.jpg")
save(mirrored, "pairs", "1-astronaut-and-mirror", "b.jpg")
save(astronaut, "pairs", "2-astronaut-and-cameraman", "a.jpg")
save(cameraman, "pairs", "2-astronaut-and-cameraman", "b.jpg")
save(cameraman, "pairs", "3-cameraman-and-close-up", "a.jpg")
save(cameraman_close, "pairs", "3-cameraman-and-close-up", "b.jpg")
save(astronaut, "triplets", "1-astronaut-close-up-cameraman", "1.jpg")
save(close_up, "triplets", "1-astronaut-close-up-cameraman", "2.jpg")
save(cameraman, "triplets", "1-astronaut-close-up-cameraman", "3.jpg")
