"""Running trained generators: loading checkpoints, any-size batched translation, norm modes."""
