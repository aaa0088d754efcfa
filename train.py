"""synthvis entry point: compose the Hydra config, then run the configured pipeline stages.

    python train.py                                   # CPU quickstart
    python train.py env=dmc_cheetah_run data.source.quality=random
    python train.py -m latent_dim=32,64,128,256       # one job per value
    python train.py resume=true                       # continue the last run worked on, where it stopped
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from synthvis.pipeline import run_pipeline


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Run the stages of `cfg` in its run directory."""
    run_pipeline(cfg, HydraConfig.get().overrides.task)


if __name__ == "__main__":
    main()
