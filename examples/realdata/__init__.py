"""Real maps from packages on the registry: Rfam seed alignments (ViennaRNA's sdist) and
protein structures (MDAnalysisTests' sdist), their parsers, and the download that fetches
them (`make data`)."""
