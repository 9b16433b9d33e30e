"""Check how close a model's DGCPM channel orders are to changing under small prompt changes.

    python scripts/check_prompts.py --config configs/demo.yaml                  # initial weights
    python scripts/check_prompts.py --ckpt runs/five_task/checkpoints/best.pt
    python scripts/check_prompts.py --ckpt dfpir_three_task.ckpt --config configs/three_task.yaml \\
        --set prompts.encoder=file --set prompts.table=prompts_clip.pt

Per DGPB and task: the smallest gap between consecutive sorted DGM scores, and how many of the
2C channel positions change when the prompt embedding gets random noise of relative norm 1e-4,
1e-3 and 1e-2 (mean and max over --trials directions). Without --ckpt the model is initialised
from the config's seed as the trainer does; the DGM never trains (unless model.learnable_dgm),
so its orders are those of every checkpoint trained from that config and seed.
"""

import sys

from dfpir.cli.check_prompts import main

if __name__ == "__main__":
    sys.exit(main())
