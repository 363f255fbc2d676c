"""Common mistakes per exercise, for the instructor guide (hand-written; build.py renders them).

Each is a wrong answer that ``tests/course/test_exercises.py`` plants (its ``WRONG`` answers) and that the exercise's
checker in ``recbook_course/exercises/`` rejects with a hint; build.py shows the checker's hints next to it, read from
the checker's source. tests/course/test_site.py fails when an exercise has no entry here, or an entry names no exercise.
"""

from __future__ import annotations

MISTAKES: dict[str, str] = {
    # 00_setup
    "00.quick_users": "Typing a number remembered from the text instead of reading `get_profile('quick').n_users`.",
    "00.count_interactions": "Counting users or items instead of the rows of `.interactions`, or generating with other arguments.",
    "00.has_avx2": "Answering with a string (`'yes'`) or the whole feature list instead of `True`/`False` from the report.",
    "00.threads": "Leaving torch at one thread after the experiment (every later cell then runs single-threaded), or timing "
                  "both settings under the same thread count.",
    # 01_cross_entropy
    "01.bce": "Putting the minus sign on the first term only — exactly the seed article's §4.1 formula; the loss then "
              "rewards confident mistakes on negatives.",
    "01.grad": "Returning σ(z) − y without dividing by N: the gradient of the *sum*, not of the mean.",
    "01.pos_weight": "Writing `log(sigmoid(z))` directly: it returns −inf/NaN at z = ±100; the stable form uses "
                     "`log1p(exp(-|z|))` (or `np.logaddexp`).",
    "01.seed_loss": "Reading a falling loss as progress: the seed formula is unbounded below, so its loss keeps falling "
                    "while the model learns to rank what users avoid first. And training it with the correct BCE — its "
                    "loss never goes below 0, a quick sign the experiment did not run.",
    # 02_data
    "02.filter_users": "Returning the interactions unfiltered, or filtering on the item's count instead of the user's.",
    "02.last_item": "Taking each user's first row (or the last row in file order) without sorting by timestamp.",
    "02.popularity_probs": "Uniform probabilities, or forgetting the +1 for items nobody interacted with, so they can never be drawn.",
    "02.negatives_protocol": "Drawing evaluation negatives against the training interactions only, so a user's held-out item can "
                             "come back as a 'negative', or reading 'higher' from an interval that holds 0.",
    # 03_baselines
    "03.random_hit_rate": "k / n instead of k / (n + 1): the positive is one of the n + 1 candidates.",
    "03.popularity_scores": "Scores that ignore the training counts (all ones), or a vector per user instead of one score per candidate.",
    "03.item_cosine": "Returning the raw co-occurrence matrix XᵀX: no normalisation by √(nᵢ·nⱼ), the diagonal kept, and "
                      "NaN for an item nobody has.",
    "03.knn_neighbours": "Fitting the 10-neighbour item-kNN on all interactions (the test items leak into the similarities) "
                         "or changing the shrinkage too, so the difference has two causes.",
    # 06_finetune_bert
    "06.warmup_lr": "A constant learning rate (no warm-up, no decay), or a warm-up that starts at step 0 with rate 0 "
                    "instead of (step + 1)/warmup.",
    "06.no_decay": "Excluding only biases from weight decay and forgetting the LayerNorm weights.",
    "06.in_batch_loss": "A distance between each pair (u − v)² instead of a softmax over the batch: the other items of the batch "
                        "never act as negatives, and the temperature is ignored.",
    "06.temperature": "Changing more than the temperature — dropping the validation and early stopping, or the cross-"
                      "encoder's step budget — so the comparison no longer isolates the knob; and reading a verdict into "
                      "an interval over 50 users that contains zero.",
    # 09_lm_recommender
    "09.untrained_floor": "Flooring at the minimum over the whole matrix instead of per row, or changing the caller's scores in place.",
    "09.content_scores": "Averaging the whole history instead of the n most recent items, or forgetting to normalise the mean "
                          "(the scores are then not cosines).",
    "09.freezing_variant": "Calling a difference significant when its paired interval contains zero, or handing in the "
                            "fine-tuned text model itself instead of the frozen variant.",
    # 07_movielens_cli
    "07.best_model": "Returning the first model of the dict instead of the arg-max of the metric.",
    "07.command": "Leaving out the `train` subcommand or `--out`, so the argument list does not parse.",
    "07.protocol_ratio": "Returning the sampled NDCG alone, or reading the full-ranking value from the top level instead of "
                          "`metrics['full_ranking']`.",
    "07.second_seed": "Re-running with the same seed (train() passes --seed 0; a second --seed must come after it), or "
                       "scoring the new run under the sampled protocol while the reference is full ranking — and then "
                       "reading a seed-to-seed interval as a difference between models.",
    # 08_cascade
    "08.hard_negatives": "Taking the retriever's top k as they are: the user's own training items and the true next item "
                          "come back as 'negatives'.",
    "08.oracle_ndcg": "Counting only the hits inside the top N, forgetting that items below the top N keep the retriever's "
                       "rank and still count when N < k.",
    "08.rank_fusion": "Reporting a difference as significant when its paired interval contains zero (or the reverse).",
    # 04_sequential
    "04.causal_mask": ("Hiding the padding keys but forgetting the diagonal: a padding position then has no key at all, softmax over "
                       "an empty row is NaN, and the NaN spreads through the next layer (section 1's trap)."),
    "04.paired_ci": "Two separate intervals, or a fixed interval, instead of one bootstrap over users of the paired "
                     "differences a − b.",
    "04.shuffled_history": "Reading the verdict from the point estimate instead of the paired interval: calling a difference "
                            "real when the interval contains zero (or the reverse).",
    # 05_sequential_cold_start
    "05.nearest_by_text": "Forgetting to exclude the query item, which is always its own nearest neighbour (cosine 1).",
    "05.constant_auc": ("Counting a tie as a win or a loss: a constant score ties every other new item, and only ties counted one half "
                        "give the 0.5 of a model that knows nothing — the other rules give 1 or 0 for the same ignorance."),
    "05.id_dropout_off": "Picking (c), 'cold items get an ID vector when ID dropout is off': they never do; without ID dropout "
                          "nothing forces the text path alone to rank well.",
    # 10_peft
    "10.lora_params": "Counting a full d_in × d_out matrix per adapted weight instead of r·(d_in + d_out).",
    "10.merge": "Merging W + B·A without the α/r scaling.",
    "10.adam_bytes": "4 bytes per parameter (one moment) instead of 8: AdamW keeps two fp32 moments.",
    "10.lora_lr": "Changing the rank or the method along with the rate, so the comparison no longer isolates it; and "
                  "choosing the better rate from this test-user comparison, which tunes on the test set.",
    # 11_pruning
    "11.sparsity": "Returning the density (share of non-zeros) instead of the share of zeros.",
    "11.global_threshold": "A threshold from the first layer alone (per-layer pruning) instead of one over all tensors.",
    "11.packed_bytes": "Forgetting the bit mask: ceil(n/8) bytes on top of the stored non-zeros.",
    "11.random_control": "Building the control with l1_unstructured: that removes the smallest weights, which is magnitude "
                         "pruning again, and the comparison shows nothing. The control removes weights at random, at the same "
                         "sparsity per layer.",
    # 12_distillation
    "12.soften": "Dividing the probability by T (σ(z)/T) instead of the logit (σ(z/T)).",
    "12.kd_loss": "Leaving out the T² factor on the soft term, so its gradients shrink as the temperature grows.",
    "12.encoder_share": "Dividing by 12 (BERT-base's layers) instead of MiniLM-L6's 6.",
    "12.distill_epochs": "Comparing the short student with the teacher: every student is below the teacher, so that says "
                         "nothing about the epochs. The question is what the extra epochs bought — compare with the fully "
                         "distilled student of the same layers.",
    # 13_quantization
    "13.scale_zero_point": "Dividing the range by 256 instead of 255 steps, and leaving the zero point at 0 for an "
                           "asymmetric range.",
    "13.int8_dot": "Subtracting and multiplying in uint8/int8: the arithmetic wraps around; convert to int32 first.",
    "13.int8_mb": "Counting 4 bytes per weight (fp32) instead of 1, or forgetting the fp32 scales.",
    "13.weight_bits": "One scale for the whole weight matrix (per-tensor): a row with small weights then rounds to a few "
                      "levels or to zero, and the 4-bit model loses far more than the bits explain. Scale each output row.",
    # 14_compression_pareto
    "14.dominates": "Comparing quality only: a point dominates when it is at least as good on both quality and cost and "
                    "strictly better on one.",
    "14.front": "Returning every point instead of only those no other point dominates.",
    "14.combined_ratio": "Adding the ratios instead of multiplying them.",
    "14.student_window": "Reading the verdict from the interval alone (the rule also asks for a top-10 overlap of 0.8 with "
                         "fp32), taking the NDCG@10 interval for the difference's, or comparing costs from two separate runs.",
    # 15_distributed
    "15.per_rank_batch": "Integer division that never complains: a global batch that does not split evenly must raise "
                         "ValueError.",
    "15.adamw_bytes": "Counting the parameters only (4 bytes) instead of parameters + gradients + two AdamW moments "
                      "(16 bytes per parameter).",
    "15.sharded_lookup": "Looking up in the first shard only (clamping ids) instead of the concatenated table.",
    "15.uneven_shards": "Weighting each shard's gradient by its size: that gives the full batch's gradient back, but it is "
                        "not what DDP computes — the all-reduce averages the ranks' mean-loss gradients, whatever their sizes.",
    # 16_gpu_tpu
    "16.bucket": "Always returning the largest bucket, or not raising ValueError when no bucket is large enough.",
    "16.needs_scaler": "Answering True for every dtype: only fp16 needs loss scaling; bf16 has fp32's exponent range.",
    "16.best_batch": "Returning the largest batch measured, ignoring the latency budget (and never None).",
    "16.bucket_cost": "Padding the attention mask with 1, so the model reads the padding and its answers change, or comparing "
                       "a batch's logits with themselves instead of with the padded batch's.",
    # 17_serving
    "17.hpa_replicas": "ceil(current × utilisation / target) clamped to [min, max] without the ±10 % dead band, so the "
                       "replica count flaps on noise.",
    "17.percentile": "The nearest-rank percentile (sorted value at index ⌊n·q/100⌋) instead of NumPy's linear interpolation "
                     "at rank (n − 1)·q/100.",
    "17.token_bucket": "Letting every request through (never refusing), or refilling beyond the burst.",
    "17.burst_sustained": "Reusing one bucket for the three bursts: the next run starts with the tokens (and the clock) the "
                          "last one left, so its count says nothing about its own burst. Make a fresh bucket per run.",
    # 18_continual
    "18.psi": "Computing PSI on raw counts (with +1 smoothing) instead of on shares floored at 1e-4 and renormalised.",
    "18.reservoir": "Keeping the newest `capacity` items instead of Algorithm R: old and new items must be equally likely "
                    "to stay.",
    "18.update_due": "Counting a value *equal* to its threshold as above it (≥ instead of >).",
    "18.epochs_forgetting": "Comparing runs that start from different base models (trained again for each run), so the "
                            "base changes with the epochs, or reading 'more' from an interval that holds 0.",
}
