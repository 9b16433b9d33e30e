"""Restore an image or a folder of images with a trained model.

    python scripts/restore.py --ckpt ckpt/dfpir5.ckpt --input photos/ --degradation derain
    python scripts/restore.py --ckpt ckpt/dfpir5.ckpt -i hazy.jpg -o out.png -p "Hazy degradation"

A shim kept so the documented commands work: the command is ``dfpir restore``
(``dfpir.cli.restore``); see ``python scripts/restore.py --help``.
"""

import sys

from dfpir.cli.restore import main

if __name__ == "__main__":
    sys.exit(main())
