"""Zero-shot evaluation: the evaluator and its rollouts, paired renders, and the latent divergences."""
