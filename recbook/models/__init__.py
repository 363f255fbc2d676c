"""Models of the course. So far: loading a pretrained BERT backbone's tokenizer (``backbone``)."""
