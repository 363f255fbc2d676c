"""The glossary: the seed article's Chinese terms next to the course's English ones (hand-written; build.py renders it).

Each entry: the English term(s) the course uses, the Chinese term(s), how the seed article writes it when it
uses it (``article``: the exact phrase, checked against the article by tests/course/test_site.py when the article is
at hand; ``None`` when the article does not use the term and the course adds it), a one- or two-sentence
definition, and the chapters that teach it (notebook names; build.py links each chapter page to its terms).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    english: tuple[str, ...]
    chinese: tuple[str, ...]
    article: str | None
    definition: str
    chapters: tuple[str, ...] = ()


GLOSSARY: tuple[Term, ...] = (
    # ------------------------------------------------------------- recommenders and data
    Term(("recommender system",), ("推荐系统",), "推荐系统",
         "A system that ranks items (films, products, articles) for a user from what that user and others did before.",
         ("00_setup", "03_baselines")),
    Term(("retrieval", "candidate generation"), ("召回",), None,
         "The first, cheap stage of a recommender: pick a few hundred candidates from the whole catalogue (SASRec's "
         "top N, an approximate nearest-neighbour index) for a more expensive model to order.",
         ("08_cascade", "17_serving")),
    Term(("ranking", "re-ranking"), ("排序", "精排"), None,
         "The second stage: order the retrieved candidates with a stronger, slower model (here a BERT cross-encoder). "
         "Together with retrieval it forms a cascade.",
         ("06_finetune_bert", "08_cascade", "17_serving")),
    Term(("collaborative filtering",), ("协同过滤",), "协同过滤",
         "Recommending from who interacted with what, without reading item content: item-kNN and matrix factorisation "
         "are the classic examples.",
         ("03_baselines",)),
    Term(("content-based recommendation",), ("基于内容的推荐",), "基于内容的推荐",
         "Recommending from what items are (title, genres, description), e.g. through a text encoder's embedding of "
         "each item.",
         ("05_sequential_cold_start",)),
    Term(("cold start",), ("冷启动",), "新商品",
         "Items (or users) with no interactions yet; ID-based models cannot rank them. The article speaks of "
         "new products (新商品).",
         ("05_sequential_cold_start",)),
    Term(("representation", "embedding"), ("表征", "嵌入"), "表征",
         "A learned vector that stands for a user, an item or a text; models compare items through their vectors.",
         ("05_sequential_cold_start", "17_serving")),
    Term(("data preprocessing",), ("数据预处理",), "数据预处理",
         "Turning raw interactions into training examples: filtering, temporal splits, negative sampling, item text "
         "and tokens.",
         ("02_data",)),
    Term(("tokenizer",), ("分词器",), "分词器",
         "Turns text into the token ids a BERT reads; the course tokenizes once, in batches, instead of per example.",
         ("02_data",)),
    Term(("batch size",), ("批大小",), "批大小",
         "The number of examples in one optimisation step; bounded by memory and, when serving, by latency.",
         ("06_finetune_bert", "16_gpu_tpu")),
    # ------------------------------------------------------------- the loss and training
    Term(("cross-entropy",), ("交叉熵",), "交叉熵",
         "The negative log-likelihood of the observed labels under the model's predicted probabilities; binary "
         "cross-entropy (BCE) for yes/no labels, softmax cross-entropy over the catalogue for next-item models.",
         ("01_cross_entropy", "04_sequential")),
    Term(("binary cross-entropy",), ("二分类交叉熵",), "二分类交叉熵",
         "−[y log p + (1 − y) log(1 − p)]: the minus sign covers both terms (the article's §4.1 formula puts it on "
         "the first only; notebook 01 shows what that breaks).",
         ("01_cross_entropy",)),
    Term(("negative log-likelihood",), ("负对数似然",), "负对数似然",
         "Minus the log of the probability a model gives to what was observed; minimising it is maximum likelihood.",
         ("01_cross_entropy", "04_sequential")),
    Term(("empirical risk",), ("经验风险",), "经验风险",
         "The loss averaged over the training examples: what training actually minimises.",
         ("01_cross_entropy",)),
    Term(("chain rule",), ("链式法则",), "链式法则",
         "The derivative of a composition is the product of the derivatives; it gives ∂ℓ/∂z = σ(z) − y for BCE on a "
         "logit.",
         ("01_cross_entropy",)),
    Term(("automatic differentiation", "autograd"), ("自动微分",), "自动微分",
         "Computing gradients by applying the chain rule through the recorded operations (PyTorch's autograd); the "
         "course checks hand-written gradients against it.",
         ("01_cross_entropy",)),
    Term(("pretraining",), ("预训练",), "预训练",
         "Training a model on a large generic corpus (BERT on books and Wikipedia) before adapting it to a task.",
         ("06_finetune_bert",)),
    Term(("fine-tuning",), ("微调",), "微调",
         "Continuing to train a pretrained model on the task's data, usually with a small learning rate.",
         ("06_finetune_bert", "10_peft", "18_continual")),
    Term(("full fine-tuning",), ("全参数微调",), "全参数微调",
         "Fine-tuning every weight of the model; the reference the parameter-efficient methods are compared with.",
         ("10_peft",)),
    Term(("task head", "task adaptation layer"), ("任务适配层",), "任务适配层",
         "The small layer put on top of a pretrained encoder for the task, e.g. one logit per (history, candidate) "
         "pair.",
         ("06_finetune_bert",)),
    Term(("learning rate", "warm-up"), ("学习率", "预热"), "学习率",
         "The step size of the optimiser; warm-up raises it linearly from 0 over the first steps, then it decays.",
         ("06_finetune_bert",)),
    Term(("weight decay",), ("权重衰减",), "权重衰减",
         "Shrinking weights towards zero at every step (AdamW); biases and LayerNorm weights are left out.",
         ("06_finetune_bert",)),
    Term(("regularization",), ("正则化",), "正则化",
         "Anything that keeps a model from fitting noise: weight decay, dropout, early stopping, the EWC penalty.",
         ("06_finetune_bert", "18_continual")),
    Term(("overfitting",), ("过拟合",), "过拟合",
         "Fitting the training data at the expense of new data; seen as validation quality falling while training "
         "loss still falls.",
         ("04_sequential",)),
    Term(("early stopping",), ("早停",), "Early Stopping",
         "Stopping training when the validation metric has not improved for a set number of evaluations (patience), "
         "and keeping the best weights. The article writes it in English.",
         ("06_finetune_bert", "04_sequential")),
    Term(("gradient accumulation",), ("梯度累积",), "梯度积累",
         "Summing the gradients of several small batches before one optimiser step, to train with a batch larger "
         "than memory allows. The article writes 梯度积累.",
         ("06_finetune_bert", "04_sequential", "15_distributed")),
    Term(("mixed precision",), ("混合精度",), "混合精度训练",
         "Computing in 16-bit floats (bf16, fp16) where it is safe and in fp32 where it is not; fp16 also needs loss "
         "scaling.",
         ("06_finetune_bert", "16_gpu_tpu")),
    Term(("parameter-efficient fine-tuning", "PEFT"), ("参数高效微调",), "参数高效微调",
         "Training a small number of added or selected parameters (LoRA, prefix tuning, IA3, adapters) while the "
         "pretrained weights stay frozen.",
         ("10_peft",)),
    Term(("adapter",), ("适配器",), "Adapter",
         "A small bottleneck network inserted into every transformer layer and trained alone (Houlsby et al., 2019).",
         ("10_peft",)),
    Term(("low-rank adaptation", "LoRA"), ("低秩适应",), "低秩",
         "Learning a weight update ΔW = (α/r)·B·A of rank r next to a frozen W; it can be merged into W for serving. "
         "AdaLoRA moves the rank budget between matrices.",
         ("10_peft", "18_continual")),
    Term(("prefix tuning",), ("前缀微调",), "Prefix-Tuning",
         "Prepending trained key/value vectors to every attention layer of a frozen model.",
         ("10_peft",)),
    # ------------------------------------------------------------- compression
    Term(("model compression",), ("模型压缩",), "模型压缩",
         "Making a model smaller or cheaper to run — pruning, distillation, quantization — while measuring what "
         "quality it keeps.",
         ("11_pruning", "12_distillation", "13_quantization", "14_compression_pareto")),
    Term(("pruning",), ("剪枝",), "剪枝",
         "Removing weights (unstructured: individual weights set to zero) or whole structures (heads, neurons, "
         "layers).",
         ("11_pruning", "14_compression_pareto")),
    Term(("structured pruning",), ("结构化剪枝",), None,
         "Pruning whole attention heads, feed-forward neurons or layers, so the remaining matrices are smaller and "
         "dense kernels run faster.",
         ("11_pruning",)),
    Term(("sparsity", "sparse storage"), ("稀疏化", "稀疏化存储"), "稀疏化存储",
         "The share of zero weights; stored as a bit mask plus the non-zeros it shrinks files, but dense kernels do "
         "not run faster on it.",
         ("11_pruning",)),
    Term(("model trimming",), ("模型裁剪",), "模型裁剪",
         "Cutting parts a deployed model does not need: layers, or rows of the vocabulary the catalogue never uses.",
         ("11_pruning", "13_quantization", "14_compression_pareto")),
    Term(("knowledge distillation", "distillation"), ("知识蒸馏", "蒸馏"), None,
         "Training a small student to reproduce a large teacher's outputs (soft targets with a temperature, or "
         "embeddings).",
         ("12_distillation", "14_compression_pareto")),
    Term(("quantization",), ("量化",), "量化",
         "Storing and computing with fewer bits (int8 instead of fp32) through a scale and a zero point.",
         ("13_quantization", "14_compression_pareto")),
    Term(("fixed-point",), ("定点化",), "定点化",
         "Representing real numbers as integers times a fixed scale; int8 quantization is fixed-point arithmetic with "
         "int32 accumulation.",
         ("13_quantization",)),
    Term(("quantization-aware training", "QAT"), ("量化感知训练",), None,
         "Training with simulated (fake) quantization in the forward pass so the weights adapt to int8 rounding.",
         ("13_quantization",)),
    Term(("Pareto front",), ("帕累托前沿",), None,
         "The variants no other variant beats on both quality and cost: the only ones worth shipping.",
         ("14_compression_pareto",)),
    # ------------------------------------------------------------- scale and hardware
    Term(("distributed training",), ("分布式训练",), "分布式训练",
         "Training one model on several processes or machines that exchange gradients or parameters.",
         ("15_distributed",)),
    Term(("data parallelism",), ("数据并行",), None,
         "Every rank holds the whole model and trains on its own share of each batch; gradients are averaged "
         "(DDP). FSDP also shards parameters, gradients and optimiser state.",
         ("15_distributed",)),
    Term(("model parallelism",), ("模型并行",), "模型并行",
         "Splitting one model's parameters across devices: tensor parallelism splits a layer's matrices, row "
         "sharding splits an embedding table.",
         ("15_distributed",)),
    Term(("tensor parallelism",), ("张量并行",), None,
         "Splitting the matrices of each layer across ranks, which compute their part and combine the results.",
         ("15_distributed",)),
    Term(("model acceleration",), ("模型加速",), "模型加速",
         "Making training or inference faster on given hardware: parallelism, mixed precision, compilation, fused "
         "kernels.",
         ("15_distributed", "16_gpu_tpu")),
    Term(("GPU and TPU optimization",), ("GPU与TPU优化",), "GPU与TPU优化",
         "Using an accelerator well: bf16/fp16, torch.compile, fused attention (SDPA), batch size, fixed shapes for "
         "XLA on TPUs.",
         ("16_gpu_tpu",)),
    Term(("inference",), ("推理",), "推理",
         "Running a trained model to score new inputs; what latency and throughput measure when serving.",
         ("13_quantization", "17_serving")),
    # ------------------------------------------------------------- production
    Term(("serving", "model service"), ("服务化封装",), "服务化封装",
         "Wrapping a model behind a network API (here FastAPI) with validation, limits and health checks.",
         ("17_serving",)),
    Term(("elastic scaling", "autoscaling"), ("弹性伸缩",), "弹性伸缩",
         "Adding or removing replicas with the load (Kubernetes' HPA, Ray Serve autoscaling).",
         ("17_serving",)),
    Term(("monitoring and alerting",), ("监控告警",), "监控告警",
         "Collecting service metrics (Prometheus) and firing alerts when a rule's threshold is crossed.",
         ("17_serving", "18_continual")),
    Term(("access control", "authentication"), ("访问鉴权",), "访问鉴权",
         "Letting only holders of valid API keys call the service, with per-key rate limits.",
         ("17_serving",)),
    Term(("data masking",), ("数据脱敏",), "数据脱敏",
         "Keeping personal data out of logs and outputs; the service logs user ids only as salted hashes.",
         ("17_serving",)),
    Term(("security hardening",), ("安全防护",), "安全防护",
         "Protecting data and models: verified model files (sha256), no pickle loading, request limits, keys.",
         ("17_serving",)),
    Term(("interpretability", "explanation"), ("可解释性",), "可解释性",
         "Saying why a model recommended an item; the service's /explain endpoint attributes a score to history items "
         "by leaving each out.",
         ("17_serving",)),
    Term(("continual learning",), ("持续学习",), "持续学习",
         "Updating a deployed model as new data arrives, without retraining from scratch every time.",
         ("18_continual",)),
    Term(("data drift",), ("数据漂移",), "数据分布的变化",
         "A change in the data's distribution over time (popularity, genre mix, new items), measured here with PSI "
         "and KL divergence. The article speaks of changes in the data distribution.",
         ("18_continual",)),
    Term(("catastrophic forgetting",), ("灾难性遗忘",), "灾难性遗忘",
         "A model fine-tuned on new data losing what it knew about old data; replay and EWC reduce it.",
         ("18_continual",)),
    Term(("robustness",), ("鲁棒性",), "鲁棒性",
         "How little a model's output moves under small perturbations of its input (a stray item, a typo).",
         ("18_continual",)),
    Term(("data augmentation",), ("数据增强",), "数据增强",
         "Training on perturbed copies of the data; history dropout (blanking random history items) is one.",
         ("18_continual",)),
    # ------------------------------------------------------------- in the article, not taught here
    Term(("adversarial training",), ("对抗训练",), "对抗训练",
         "Training on inputs perturbed to maximise the loss. The article lists it; the course does not cover it.", ()),
    Term(("ensembling",), ("多模型集成",), "多模型集成",
         "Averaging the outputs of several models. The article lists it; the course does not cover it.", ()),
    Term(("prompt-based learning",), ("提示学习",), "提示学习",
         "Adapting a language model through the wording of its input instead of its weights. The article mentions it; "
         "the course does not cover it.", ()),
    Term(("multimodal",), ("多模态",), "多模态",
         "Using images, audio or video next to text. The article mentions it; the course uses text and interactions "
         "only.", ()),
)

