"""fecsim web app: `python app.py` serves http://127.0.0.1:7860; a Hugging Face Space runs it too."""
import argparse
import os

# Before gradio is imported: no analytics or telemetry requests leave this machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from fecsim import ExpressionComparer, checkpoint  # noqa: E402
from fecsim.web import build_demo, launch  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    # A Space sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; locally it is 127.0.0.1:7860.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--checkpoint", default=str(checkpoint.SHIPPED),
                        help="model checkpoint (default: the shipped model)")
    parser.add_argument("--flag-dir", default=None,
                        help="where flagged results are stored (default: /data/flagged when "
                             "/data is writable persistent storage, else flagged)")
    parser.add_argument("--appearance-only", action="store_true",
                        help="read faces by their appearance alone, without the geometry view "
                             "(faster; the live mode always does)")
    args = parser.parse_args(argv)
    comparer = (ExpressionComparer.load(args.checkpoint, device="cpu", geometry=False)
                if args.appearance_only else None)
    demo = build_demo(args.checkpoint, flag_dir=args.flag_dir, comparer=comparer)
    launch(demo, host=args.host, port=args.port, share=args.share)


if __name__ == "__main__":
    main()
