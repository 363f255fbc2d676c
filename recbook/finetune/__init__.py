"""Fine-tuning a pretrained language model for recommendation, beyond full fine-tuning: parameter-efficient methods
through the ``peft`` library (``peft``), bottleneck adapters written by hand (``adapters``) and training a re-ranker on
a retriever's hard negatives (``hard_negatives``)."""
