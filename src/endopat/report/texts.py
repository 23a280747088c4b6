"""The study report's fixed sentences and the variance shares' column names (shared by report.md
and report.html)."""

SHARES = [("var_pretrain_pct", "pretraining runs"), ("var_subset_pct", "label subsets"),
          ("var_finetune_pct", "fine-tuning seeds"), ("var_image_pct", "test images")]

SAVINGS_TEXT = ("Labels a method needs to reach the baseline's mean DSC at each baseline label count, read "
                "off both curves made monotone over all runs (interpolated in log2 labels), and the share "
                "of labels saved, each with a 95 % interval as wide as the difference's (the baseline's curve "
                "bootstrapped, each method's difference rescaled to its calibrated interval). "
                "An end outside the measured label counts is a bound, never an extrapolation: "
                "'<= n' (reached already at the smallest count), '> n' (not reached by the largest).")

NO_SAVINGS_TEXT = "No saving for: "

DIFF_TEXT = ("Mean test DSC difference with a 95 % Student-t interval whose variance holds every source of "
             "variation (label subsets, pretraining runs, fine-tuning seeds, test images) and whose degrees "
             "of freedom are the fewest of any run-level source (df: a level of 2 units has 1), calibrated by "
             "simulation at these sizes (bench/calibration.py, docs/method.md); the verdict reads that "
             "interval. The shares split the variance of the difference by its source ('-': one member, not "
             "measured). 'Runs to resolve': the cheapest design (label subsets, never more than the labeled "
             "pool holds disjoint, x pretraining runs x seeds) whose interval would exclude 0 with 80 % power "
             "if the true difference were the one observed, or why none would. Secondary: the per-image "
             "paired interval and Wilcoxon test of run-averaged scores, which ignore the variation between runs.")


SELECTION_TEXT = ("A method that chooses its labeled frames (`selection`, endopat.study.selection) against the "
                  "same method drawing them at random, at the same label counts: the DSC difference and the "
                  "labels saved by the choice alone (intervals as above).")


SOURCES_TEXT = ("Files of each pretraining source that belong to the test split: the same file, the same pixels, "
                "or the same video (group) as a test image (endopat.study.sources). `test_frames: exclude` (the "
                "default) leaves them out of pretraining; `keep` is the paper's transductive setting.")

PAIRS_TEXT = ("Temporal pairs: how alike the two frames of a pair are, against any two frames of one video (the mean "
              "absolute grey difference of the pairs over that of random same-video pairs, endopat.semi.unlabeled). "
              "Near 1, neighbours are no more alike than random frames, and the row tests temporal consistency "
              "without the small motion it assumes.")

VS_TEXT = ("Each method against {vs} instead of the baseline, at the fractions both ran: the same "
           "inference, verdict and shares as above (e.g. a volume ablation: more frames or steps against fewer).")

PROTOCOL_TEXT = ("Protocol: **{protocol}** (`protocol:` in the config; endopat.study.protocol). Where this study "
                 "differs from the paper's protocol (L input, no augmentation, transductive pretraining, a "
                 "validation subset per label subset; sec. 2.2.2, 2.3 and the Discussion):")
