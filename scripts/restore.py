"""Restore an image or a folder of images with a trained model.

    python scripts/restore.py --ckpt ckpt/dfpir5.ckpt --input photos/ --degradation derain
    python scripts/restore.py --ckpt ckpt/dfpir5.ckpt -i hazy.jpg -o out.png -p "Hazy degradation"

See the README ("Evaluate", "Restore") and ``python scripts/restore.py --help``; the work is done by
``dfpir.restore``.
"""

import sys

from dfpir.restore import main

if __name__ == "__main__":
    sys.exit(main())
