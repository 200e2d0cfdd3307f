"""Measuring answer quality: `qa eval squad PATH` (ReQA protocol on a SQuAD-format file).

One module per concept: `squad` turns a SQuAD file into article files and gold offsets,
`ooc` reads the out-of-corpus question sets, `metrics` holds MRR, R@k, AUROC and what users
see (answered right / wrong / abstained), `answers` groups those by question set, `run` asks
the questions through the engine, `report` prints the table and writes the JSON, `command`
wires it into the `qa` CLI.
Nothing heavy is imported here; the model and indexes load only when an evaluation runs.
"""
