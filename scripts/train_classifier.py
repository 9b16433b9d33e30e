"""Train the degradation classifier (ours; for ``--degradation auto``) and store it in a checkpoint.

    python scripts/train_classifier.py --config configs/demo.yaml --ckpt runs/demo/checkpoints/best.pt
    python scripts/train_classifier.py --config configs/five_task.yaml --ckpt dfpir5.ckpt --out clf.pt

It trains on the config's training mix (its ``classifier:`` section sets the recipe) and adds
the classifier to the checkpoint (rewritten atomically), or writes it to ``--out`` (a file that
``restore.py``/``eval.py`` read with ``--classifier``), e.g. for a released checkpoint. The
restoration network's weights are not read or changed. See the README, "Restore".
"""

import sys

from dfpir.cli.train_classifier import main

if __name__ == "__main__":
    sys.exit(main())
