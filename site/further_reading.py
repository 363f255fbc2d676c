"""Further reading (hand-written; build.py renders it on every chapter page and on the further-reading page).

``REFERENCES``: every paper the site lists, by key. ``ARTICLE_READING``: the six papers the seed article recommends
(its §7.3), in its order. ``CHAPTER_READING``: per chapter, the papers the notebook itself cites (tests/course/test_site.py
checks that every "Author et al., YEAR" / "Author & Author, YEAR" citation in a notebook's text is listed for
that chapter), then background the chapter builds on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    authors: str  # as cited: "Vaswani et al."
    year: int
    title: str
    venue: str
    url: str
    note: str = ""  # one line: why read it here


REFERENCES: dict[str, Reference] = {
    # ---- the seed article's reading list (§7.3 相关论文推荐)
    "vaswani2017": Reference("Vaswani et al.", 2017, "Attention Is All You Need", "NeurIPS 2017",
                             "https://arxiv.org/abs/1706.03762", "the Transformer: self-attention, the block every model here is built from"),
    "devlin2019": Reference("Devlin et al.", 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
                            "NAACL 2019", "https://arxiv.org/abs/1810.04805", "masked-language-model pretraining; the encoder the cross-encoder fine-tunes"),
    "radford2019": Reference("Radford et al.", 2019, "Language Models are Unsupervised Multitask Learners (GPT-2)", "OpenAI technical report",
                             "https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf",
                             "a causal (left-to-right) transformer trained by next-token likelihood, the objective SASRec applies to items"),
    "houlsby2019": Reference("Houlsby et al.", 2019, "Parameter-Efficient Transfer Learning for NLP", "ICML 2019",
                             "https://arxiv.org/abs/1902.00751", "bottleneck adapters; notebook 10 writes one by hand"),
    "zhang2023": Reference("Zhang et al.", 2023, "AdaLoRA: Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning", "ICLR 2023",
                           "https://arxiv.org/abs/2303.10512",
                           "LoRA whose rank budget moves to the matrices that need it (the article gives the title as "
                           "'Adaptive Low-Rank Adaptation for Parameter-Efficient Fine-Tuning')"),
    "li2021": Reference("Li & Liang", 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", "ACL 2021",
                        "https://arxiv.org/abs/2101.00190", "trained key/value prefixes in every attention layer"),
    # ---- cited by the chapters, and background
    "rendle2009": Reference("Rendle et al.", 2009, "BPR: Bayesian Personalized Ranking from Implicit Feedback", "UAI 2009",
                            "https://arxiv.org/abs/1205.2618", "the pairwise loss MF-BPR trains with"),
    "krichene2020": Reference("Krichene & Rendle", 2020, "On Sampled Metrics for Item Recommendation", "KDD 2020",
                              "https://doi.org/10.1145/3394486.3403226", "why sampled metrics can reorder models"),
    "harper2015": Reference("Harper & Konstan", 2015, "The MovieLens Datasets: History and Context", "ACM TiiS 5(4)",
                            "https://doi.org/10.1145/2827872", "what MovieLens-100k is, and how it was collected"),
    "kang2018": Reference("Kang & McAuley", 2018, "Self-Attentive Sequential Recommendation (SASRec)", "ICDM 2018",
                          "https://arxiv.org/abs/1808.09781", "the causal sequential recommender of notebooks 04–08, 17 and 18"),
    "sun2019": Reference("Sun et al.", 2019, "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer",
                         "CIKM 2019", "https://arxiv.org/abs/1904.06690", "the cloze-trained sequential recommender of notebook 04"),
    "petrov2022": Reference("Petrov & Macdonald", 2022, "A Systematic Review and Replicability Study of BERT4Rec for Sequential Recommendation",
                            "RecSys 2022", "https://arxiv.org/abs/2207.07483", "BERT4Rec needs far longer training than its paper says"),
    "klenitskiy2023": Reference("Klenitskiy & Vasilev", 2023, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?",
                                "RecSys 2023", "https://arxiv.org/abs/2309.07602", "with the same full-softmax loss, SASRec is ahead"),
    "kula2015": Reference("Kula", 2015, "Metadata Embeddings for User and Item Cold-start Recommendations", "CBRecSys workshop, RecSys 2015",
                          "https://arxiv.org/abs/1507.08439", "LightFM: feature-based hybrids on cold items"),
    "yi2019": Reference("Yi et al.", 2019, "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations", "RecSys 2019",
                        "https://dl.acm.org/doi/10.1145/3298689.3346996",
                        "the logQ correction: in-batch negatives are drawn by popularity, so the loss must subtract it"),
    "hou2022": Reference("Hou et al.", 2022, "Towards Universal Sequence Representation Learning for Recommender Systems (UniSRec)",
                         "KDD 2022", "https://arxiv.org/abs/2206.05941",
                         "item text encoded by a pretrained language model and adapted to the recommender: the idea behind lmrec"),
    "steck2019": Reference("Steck", 2019, "Embarrassingly Shallow Autoencoders for Sparse Data (EASE)", "WWW 2019",
                           "https://arxiv.org/abs/1905.03375", "the closed-form item-to-item baseline lmrec is measured against"),
    "reimers2019": Reference("Reimers & Gurevych", 2019, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", "EMNLP 2019",
                             "https://arxiv.org/abs/1908.10084", "the two-tower (bi-encoder) recipe behind the course's sentence embeddings"),
    "wang2020": Reference("Wang et al.", 2020, "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained Transformers",
                          "NeurIPS 2020", "https://arxiv.org/abs/2002.10957", "where the course's default BERT, all-MiniLM-L6-v2, comes from"),
    "nogueira2019": Reference("Nogueira & Cho", 2019, "Passage Re-ranking with BERT", "arXiv preprint",
                              "https://arxiv.org/abs/1901.04085", "a BERT cross-encoder re-ranking a cheap retriever's candidates"),
    "gao2021": Reference("Gao et al.", 2021, "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline", "ECIR 2021",
                         "https://arxiv.org/abs/2101.08751", "re-rankers trained on their retriever's top results (Gao, Dai & Callan)"),
    "covington2016": Reference("Covington et al.", 2016, "Deep Neural Networks for YouTube Recommendations", "RecSys 2016",
                               "https://doi.org/10.1145/2959100.2959190", "candidate generation, then ranking: the production cascade"),
    "hu2021": Reference("Hu et al.", 2021, "LoRA: Low-Rank Adaptation of Large Language Models", "ICLR 2022",
                        "https://arxiv.org/abs/2106.09685", "the low-rank update W + (α/r)·B·A and its merge"),
    "liu2022": Reference("Liu et al.", 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning (IA3)",
                         "NeurIPS 2022", "https://arxiv.org/abs/2205.05638", "IA3: learned rescaling vectors"),
    "sanh2020": Reference("Sanh et al.", 2020, "Movement Pruning: Adaptive Sparsity by Fine-Tuning", "NeurIPS 2020",
                          "https://arxiv.org/abs/2005.07683", "high sparsity on BERT with long training"),
    "michel2019": Reference("Michel et al.", 2019, "Are Sixteen Heads Really Better than One?", "NeurIPS 2019",
                            "https://arxiv.org/abs/1905.10650", "removing attention heads (structured pruning)"),
    "han2016": Reference("Han et al.", 2016, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained Quantization and Huffman Coding",
                         "ICLR 2016", "https://arxiv.org/abs/1510.00149", "pruning and quantization combined, ratios multiplying"),
    "hinton2015": Reference("Hinton et al.", 2015, "Distilling the Knowledge in a Neural Network", "NIPS 2014 Deep Learning Workshop",
                            "https://arxiv.org/abs/1503.02531", "soft targets and the temperature; the T² factor"),
    "sanh2019": Reference("Sanh et al.", 2019, "DistilBERT, a distilled version of BERT: smaller, faster, cheaper and lighter",
                          "EMC² workshop, NeurIPS 2019", "https://arxiv.org/abs/1910.01108", "a 6-layer student of BERT-base"),
    "jiao2020": Reference("Jiao et al.", 2020, "TinyBERT: Distilling BERT for Natural Language Understanding", "Findings of EMNLP 2020",
                          "https://arxiv.org/abs/1909.10351", "layer-to-layer distillation into a 4-layer student"),
    "jacob2018": Reference("Jacob et al.", 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference",
                           "CVPR 2018", "https://arxiv.org/abs/1712.05877", "scale and zero point, int32 accumulation, quantization-aware training"),
    "kalamkar2019": Reference("Kalamkar et al.", 2019, "A Study of BFLOAT16 for Deep Learning Training", "arXiv preprint",
                              "https://arxiv.org/abs/1905.12322", "why bf16 keeps fp32's range"),
    "li2020": Reference("Li et al.", 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training", "VLDB 2020",
                        "https://arxiv.org/abs/2006.15704", "how DDP buckets and overlaps the all-reduce"),
    "zhao2023": Reference("Zhao et al.", 2023, "PyTorch FSDP: Experiences on Scaling Fully Sharded Data Parallel", "VLDB 2023",
                          "https://arxiv.org/abs/2304.11277", "sharding parameters, gradients and optimiser state"),
    "rajbhandari2020": Reference("Rajbhandari et al.", 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", "SC 2020",
                                 "https://arxiv.org/abs/1910.02054", "the 16 bytes per parameter of mixed-precision Adam, and how to shard them"),
    "shoeybi2019": Reference("Shoeybi et al.", 2019, "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
                             "arXiv preprint", "https://arxiv.org/abs/1909.08053", "tensor parallelism for transformer layers"),
    "micikevicius2018": Reference("Micikevicius et al.", 2018, "Mixed Precision Training", "ICLR 2018",
                                  "https://arxiv.org/abs/1710.03740", "fp16 with an fp32 master copy and loss scaling"),
    "dao2022": Reference("Dao et al.", 2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness", "NeurIPS 2022",
                         "https://arxiv.org/abs/2205.14135", "the fused attention kernel SDPA dispatches to on GPUs"),
    "malkov2020": Reference("Malkov & Yashunin", 2020, "Efficient and Robust Approximate Nearest Neighbor Search Using Hierarchical Navigable Small World Graphs",
                            "IEEE TPAMI 42(4)", "https://arxiv.org/abs/1603.09320", "HNSW, the graph index faiss builds in notebook 17"),
    "johnson2019": Reference("Johnson et al.", 2019, "Billion-scale similarity search with GPUs", "IEEE Transactions on Big Data",
                             "https://arxiv.org/abs/1702.08734", "faiss"),
    "meng2020": Reference("Meng et al.", 2020, "Exploring Data Splitting Strategies for the Evaluation of Recommendation Models", "RecSys 2020",
                          "https://arxiv.org/abs/2007.13237", "why a global temporal split, not leave-last-out, measures how a model ages"),
    "sun2023": Reference("Sun", 2023, "Take a Fresh Look at Recommender Systems from an Evaluation Standpoint", "SIGIR 2023",
                         "https://arxiv.org/abs/2210.04149", "offline evaluation should respect the global timeline"),
    "ji2023": Reference("Ji et al.", 2023, "A Critical Study on Data Leakage in Recommender System Offline Evaluation", "ACM TOIS 41(3)",
                        "https://arxiv.org/abs/2010.11060", "leave-last-out lets models see the future; global temporal splits do not"),
    "kirkpatrick2017": Reference("Kirkpatrick et al.", 2017, "Overcoming Catastrophic Forgetting in Neural Networks", "PNAS 114(13)",
                                 "https://arxiv.org/abs/1612.00796", "Elastic Weight Consolidation (EWC)"),
    "lopezpaz2017": Reference("Lopez-Paz & Ranzato", 2017, "Gradient Episodic Memory for Continual Learning", "NeurIPS 2017",
                              "https://arxiv.org/abs/1706.08840", "backward transfer measured on held-out data of every earlier task"),
    "chaudhry2018": Reference("Chaudhry et al.", 2018, "Riemannian Walk for Incremental Learning: Understanding Forgetting and Intransigence",
                              "ECCV 2018", "https://arxiv.org/abs/1801.10112", "forgetting and intransigence, measured on held-out data of the earlier tasks"),
    "frantar2023": Reference("Frantar et al.", 2023, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
                             "ICLR 2023", "https://arxiv.org/abs/2210.17323", "4-bit weights that keep quality: per-group scales and error-correcting rounding (exercise 13.weight_bits)"),
    "rabanser2019": Reference("Rabanser et al.", 2019, "Failing Loudly: An Empirical Study of Methods for Detecting Dataset Shift",
                              "NeurIPS 2019", "https://arxiv.org/abs/1810.11953", "drift tests compared by their power over shift sizes, with false alarms held fixed (section 13.3b)"),
    "vitter1985": Reference("Vitter", 1985, "Random Sampling with a Reservoir", "ACM Transactions on Mathematical Software 11(1)",
                            "https://doi.org/10.1145/3147.3165", "Algorithm R, the replay buffer's sampler (exercise 18.reservoir)"),
}

# The seed article's §7.3, in its order.
ARTICLE_READING: tuple[str, ...] = ("vaswani2017", "devlin2019", "radford2019", "houlsby2019", "zhang2023", "li2021")

# Per chapter: (cited in the notebook, background). Every notebook must have an entry (tests/course/test_site.py).
CHAPTER_READING: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "00_setup": ((), ("vaswani2017", "devlin2019")),
    "01_cross_entropy": ((), ("rendle2009",)),
    "02_data": ((), ("devlin2019", "harper2015")),
    "03_baselines": (("krichene2020",), ("rendle2009", "harper2015")),
    "04_sequential": (("petrov2022", "klenitskiy2023"), ("kang2018", "sun2019", "vaswani2017", "radford2019", "devlin2019")),
    "05_sequential_cold_start": (("kula2015",), ("reimers2019", "wang2020")),
    "06_finetune_bert": (("yi2019",), ("devlin2019", "vaswani2017", "reimers2019", "nogueira2019")),
    "07_movielens_cli": ((), ("harper2015", "krichene2020")),
    "08_cascade": (("gao2021",), ("covington2016", "nogueira2019", "kang2018")),
    "09_lm_recommender": ((), ("kang2018", "reimers2019", "hou2022", "steck2019")),
    "10_peft": (("hu2021", "zhang2023", "liu2022", "li2021", "houlsby2019"), ()),
    "11_pruning": (("sanh2020",), ("michel2019", "han2016")),
    "12_distillation": (("sanh2019", "jiao2020"), ("hinton2015", "wang2020")),
    "13_quantization": ((), ("jacob2018", "kalamkar2019", "frantar2023")),
    "14_compression_pareto": ((), ("han2016",)),
    "15_distributed": ((), ("li2020", "zhao2023", "rajbhandari2020", "shoeybi2019")),
    "16_gpu_tpu": ((), ("micikevicius2018", "kalamkar2019", "dao2022")),
    "17_serving": ((), ("covington2016", "malkov2020", "johnson2019")),
    "18_continual": (("meng2020", "sun2023", "ji2023", "kirkpatrick2017", "lopezpaz2017", "chaudhry2018"), ("vitter1985", "hu2021", "rabanser2019")),
}
