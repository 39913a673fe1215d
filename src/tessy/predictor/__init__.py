"""The offline workflow that makes a boundary predictor (`tessy predictor ...`).

    segments   random ~60-word segments of one role's thinking (from its single-role traces)
    annotate   style spans of a segment: the lexicon, or an LLM's verbatim phrase list
    annotator  annotating whole segment files, resumably, against an OpenAI-compatible server
    labels     labelled segments -> token labels
    train      fine-tune a token classifier (HF Trainer) into a predictor directory
    evaluate   word/token accuracy, span F1 and cut agreement of any predictor

What runs during synthesis (predictors, the cut watcher) lives in `tessy.boundary`.
"""
