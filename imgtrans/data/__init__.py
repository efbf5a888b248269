"""Image I/O, dataset formats, paired transforms and the named-dataset catalog."""
