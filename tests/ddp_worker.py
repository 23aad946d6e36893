"""Run by test_train.py under torchrun: trains, then saves this rank's weights for comparison."""
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from train.train import main

model = main(sys.argv[1:])
out = Path(sys.argv[sys.argv.index("--out") + 1])
save_file(model.state_dict(), str(out / f"rank{os.environ['RANK']}.safetensors"))
