"""Mutants of the batched trainer and of what it shares with the PPO learners.

Files: rlmusic/algos/batched/trainer.py, rlmusic/algos/advantages.py, rlmusic/algos/kl.py,
rlmusic/algos/value.py (the last three are shared with algo=ppo; their mutants live here, the
SB3 wrappers' in sb3.py) and the default run's KL control in rlmusic/algos/batched/config.py.
"""

TRAINER = "rlmusic/algos/batched/trainer.py"
BATCHED_CONFIG = "rlmusic/algos/batched/config.py"  # the shipped defaults
ADVANTAGES = "rlmusic/algos/advantages.py"
KL = "rlmusic/algos/kl.py"
VALUE = "rlmusic/algos/value.py"

GUARDS = "tests/test_batched_guards.py"
CLIMBS = f"{GUARDS}::test_the_update_climbs_the_reward_and_descends_when_it_is_negated"
RATIO_ONE = f"{GUARDS}::test_the_ratio_is_one_until_the_policy_moves"
CLIPPING = f"{GUARDS}::test_clipping_bounds_the_movement_of_one_iteration"
KL_PULLS = f"{GUARDS}::test_a_kl_coefficient_alone_pulls_the_policy_back_to_the_prior"
PITCH_BETA = f"{GUARDS}::test_the_pitch_beta_holds_the_pitch_choice"
NORMALISED = f"{GUARDS}::test_normalised_advantages_ignore_the_reward_scale_and_offset"
GROUPS = f"{GUARDS}::test_grpo_weighs_groups_alike_and_rloo_by_their_reward_scale"
ENTROPY = f"{GUARDS}::test_the_entropy_bonus_raises_the_entropy"
VALUE_LEARNS = (
    "tests/test_batched.py::test_the_value_function_learns_returns_that_depend_on_the_step"
)
VALUE_APART = "tests/test_batched.py::test_the_value_loss_never_moves_the_generator"
TEMPERATURE = "tests/test_batched.py::test_a_tempered_run_acts_and_trains_the_same_policy"
LEARNS = "tests/test_batched.py::test_each_method_learns_a_simple_reward"
MATH = "tests/test_algos_math.py"
VALUE_TESTS = "tests/test_value.py"
COLLAPSE = "tests/test_finetune_collapse.py"

# multi-line texts of the trainer's constructor and of BatchedConfig's KL defaults
PRIOR_COPY = (
    "        self.prior = frozen(prior if prior is not None else policy, copy=prior is None)\n"
    "        self.prior.to(self.device)\n"
)
FOLD = (
    "        if config.temperature != 1.0:\n"
    "            fold_temperature(self.policy, config.temperature)"
    "  # after the prior's copy\n"
)
KL_COEF_LINES = (
    "    kl_coef: float | None = {coef}\n"
    "    # beta on the pitch part of the KL (which pitch, given that a note is struck); None: kl_coef\n"
    "    # on the whole log ratio (see split_log_ratio). Applies to kl_mode=penalty; an adaptive\n"
    "    # kl_target moves both betas by the same factor.\n"
    "    kl_pitch_coef: float | None = {pitch}\n"
)

MUTANTS = [
    # ---- the policy-gradient loss: direction, ratio, clipping --------------------------------
    {
        "name": "clipping removed from the policy-gradient loss",
        "file": TRAINER,
        "old": "ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv",
        "new": "ratio * adv",
        "tests": [CLIPPING],
    },
    {
        "name": "clipping on the wrong side (max of the clipped and unclipped objectives)",
        "file": TRAINER,
        "old": "pg_loss = -torch.min(",
        "new": "pg_loss = -torch.max(",
        "tests": [CLIPPING],
    },
    {
        "name": "clip range ignored (hard-coded 0.2)",
        "file": TRAINER,
        "old": "ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)",
        "new": "ratio.clamp(0.8, 1.2)",
        "tests": [CLIPPING],
    },
    {
        "name": "ratio clipped from below only",
        "file": TRAINER,
        "old": "ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range)",
        "new": "ratio.clamp(min=1 - cfg.clip_range)",
        "tests": [CLIPPING],
    },
    {
        "name": "ratio against the current policy, detached (vanilla PG: the clip never bites)",
        "file": TRAINER,
        "old": "log_ratio = logp - old_logp[idx]",
        "new": "log_ratio = logp - logp.detach()",
        "tests": [CLIPPING],
    },
    {
        "name": "ratio inverted (old - new)",
        "file": TRAINER,
        "old": "log_ratio = logp - old_logp[idx]",
        "new": "log_ratio = old_logp[idx] - logp",
        "tests": [CLIMBS],
    },
    {
        "name": "policy-gradient loss sign flipped (gradient descent on the reward)",
        "file": TRAINER,
        "old": "pg_loss = -torch.min(",
        "new": "pg_loss = torch.min(",
        "tests": [CLIMBS],
    },
    {
        "name": "ratio of the greedy tokens, not the sampled ones",
        "file": TRAINER,
        "old": "logp = logp_all.gather(-1, tokens[idx].unsqueeze(-1)).squeeze(-1)",
        "new": "logp = logp_all.max(-1).values",
        "tests": [RATIO_ONE],
    },
    {
        "name": "old log-probs not shuffled with the minibatch (ratio of other rows' tokens)",
        "file": TRAINER,
        "old": "log_ratio = logp - old_logp[idx]",
        "new": "log_ratio = logp - old_logp[start : start + cfg.minibatch_size]",
        "tests": [RATIO_ONE],
    },
    {
        "name": "advantages not shuffled with the minibatch (paid to other rows' tokens)",
        "file": TRAINER,
        "old": "adv = advantages[idx]",
        "new": "adv = advantages[start : start + cfg.minibatch_size]",
        "tests": [CLIMBS],
    },
    {
        "name": "the policy's optimizer never steps",
        "file": TRAINER,
        "old": "                self.optimizer.step()\n",
        "new": "",
        "tests": [CLIMBS],
    },
    # ---- rewards and KL control ---------------------------------------------------------------
    {
        "name": "task reward sign flipped (kl_mode=penalty)",
        "file": TRAINER,
        "old": "rewards = task_reward - penalty",
        "new": "rewards = -task_reward - penalty",
        "tests": [CLIMBS],
    },
    {
        "name": "task reward sign flipped (kl_mode=loss)",
        "file": TRAINER,
        "old": "rewards = task_reward\n",
        "new": "rewards = -task_reward\n",
        "tests": [CLIMBS],
    },
    {
        "name": "KL penalty added to the reward instead of subtracted",
        "file": TRAINER,
        "old": "rewards = task_reward - penalty",
        "new": "rewards = task_reward + penalty",
        "tests": [KL_PULLS],
    },
    {
        "name": "per-token KL inverted (log p_prior - log pi)",
        "file": TRAINER,
        "old": "kl_per_token = old_logp - prior_logp",
        "new": "kl_per_token = prior_logp - old_logp",
        "tests": [KL_PULLS],
    },
    {
        "name": "kl_mode=loss: the KL loss subtracted",
        "file": TRAINER,
        "old": "loss = loss + beta * kl_loss(",
        "new": "loss = loss - beta * kl_loss(",
        "tests": [KL_PULLS],
    },
    {
        "name": "the pitch beta ignored (the event beta weighs the pitch part too)",
        "file": TRAINER,
        "old": "beta, pitch_beta = self.kl.coef, self.kl.pitch_coef",
        "new": "beta, pitch_beta = self.kl.coef, self.kl.coef",
        "tests": [PITCH_BETA],
    },
    {
        "name": "the prior shares the policy's weights (not copied: the KL is always 0)",
        "file": TRAINER,
        "old": "copy=prior is None)",
        "new": "copy=False)",
        "tests": [LEARNS],
    },
    {
        "name": "entropy bonus sign flipped",
        "file": TRAINER,
        "old": "loss = pg_loss - cfg.ent_coef * entropy",
        "new": "loss = pg_loss + cfg.ent_coef * entropy",
        "tests": [ENTROPY],
    },
    # ---- advantages ---------------------------------------------------------------------------
    {
        "name": "advantage normalisation without the mean",
        "file": TRAINER,
        "old": "advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
        "new": "advantages = advantages / (advantages.std() + 1e-8)",
        "tests": [NORMALISED],
    },
    {
        "name": "advantage normalisation without the std",
        "file": TRAINER,
        "old": "advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
        "new": "advantages = advantages - advantages.mean()",
        "tests": [NORMALISED],
    },
    {
        "name": "normalize_advantages read inverted",
        "file": TRAINER,
        "old": "if cfg.normalize_advantages:",
        "new": "if not cfg.normalize_advantages:",
        "tests": [NORMALISED],
    },
    {
        "name": "the group method not passed (rloo runs grpo's baseline)",
        "file": TRAINER,
        "old": "group_advantages(rewards, cfg.group_size, cfg.gamma, cfg.method)",
        "new": "group_advantages(rewards, cfg.group_size, cfg.gamma)",
        "tests": [GROUPS],
    },
    {
        "name": "GAE called with gamma and lambda swapped",
        "file": TRAINER,
        "old": "gae(rewards, old_values, cfg.gamma, cfg.gae_lambda)",
        "new": "gae(rewards, old_values, cfg.gae_lambda, cfg.gamma)",
        "tests": [VALUE_LEARNS],
    },
    {
        "name": "rloo without the leave-one-out correction (plain group mean baseline)",
        "file": ADVANTAGES,
        "old": "advantages = (returns - mean) * group_size / (group_size - 1)",
        "new": "advantages = returns - mean",
        "tests": [MATH],
    },
    {
        "name": "grpo divides by the whole batch's std, not the group's",
        "file": ADVANTAGES,
        "old": "(returns.std(dim=1, keepdim=True) + 1e-6)",
        "new": "(returns.std() + 1e-6)",
        "tests": [MATH, GROUPS],
    },
    {
        "name": "group mean taken across groups (per member) instead of within the group",
        "file": ADVANTAGES,
        "old": "mean = returns.mean(dim=1, keepdim=True)",
        "new": "mean = returns.mean(dim=0, keepdim=True)",
        "tests": [MATH],
    },
    {
        "name": "group baselines ignore gamma",
        "file": ADVANTAGES,
        "old": "returns = discounted_returns(rewards, gamma).view(",
        "new": "returns = discounted_returns(rewards, 1.0).view(",
        "tests": [MATH],
    },
    {
        "name": "discounted returns without the discount",
        "file": ADVANTAGES,
        "old": "running = rewards[:, t] + gamma * running",
        "new": "running = rewards[:, t] + running",
        "tests": [MATH],
    },
    {
        "name": "GAE traces decay by lambda only (gamma dropped)",
        "file": ADVANTAGES,
        "old": "running = delta + gamma * lam * running",
        "new": "running = delta + lam * running",
        "tests": [MATH],
    },
    {
        "name": "GAE never bootstraps (next value stays 0)",
        "file": ADVANTAGES,
        "old": "        next_value = values[:, t]\n",
        "new": "",
        "tests": [MATH],
    },
    {
        "name": "GAE's returns are the advantages (critic target without the value)",
        "file": ADVANTAGES,
        "old": "return advantages, advantages + values",
        "new": "return advantages, advantages",
        "tests": [MATH],
    },
    # ---- value function (PopArt) and its separation from the policy ---------------------------
    {
        "name": "PopArt statistics never updated by the trainer",
        "file": TRAINER,
        "old": (
            "            self.value_fn.update_statistics(returns)"
            "  # PopArt: predictions unchanged\n"
        ),
        "new": "",
        "tests": [VALUE_LEARNS],
    },
    {
        "name": "the value regresses the normalised advantages, not the returns",
        "file": TRAINER,
        "old": "positions[idx], returns[idx])",
        "new": "positions[idx], advantages[idx])",
        "tests": [VALUE_LEARNS],
    },
    {
        "name": "one gradient clip over policy and value (the value gradient shrinks the step)",
        "file": TRAINER,
        "old": "grad_norm = nn.utils.clip_grad_norm_(policy_params, cfg.max_grad_norm)",
        "new": (
            "grad_norm = nn.utils.clip_grad_norm_(policy_params + value_params, cfg.max_grad_norm)"
        ),
        "tests": [VALUE_APART],
    },
    {
        "name": "value head reads the hidden state without detaching it",
        "file": VALUE,
        "old": "self.features(hidden.detach().float())",
        "new": "self.features(hidden.float())",
        "tests": [VALUE_TESTS, VALUE_APART],
    },
    {
        "name": "PopArt weight rescaled the wrong way",
        "file": VALUE,
        "old": "self.out.weight.mul_(self.std / new_std)",
        "new": "self.out.weight.mul_(new_std / self.std)",
        "tests": [VALUE_TESTS],
    },
    {
        "name": "PopArt bias shifted by the wrong sign",
        "file": VALUE,
        "old": ".add_(self.mean - new_mean)",
        "new": ".add_(new_mean - self.mean)",
        "tests": [VALUE_TESTS],
    },
    {
        "name": "PopArt output not rescaled at all (predictions jump with the statistics)",
        "file": VALUE,
        "old": "        self.out.weight.mul_(self.std / new_std)\n",
        "new": "",
        "tests": [VALUE_TESTS],
    },
    {
        "name": "return statistics' moving average with the rates swapped",
        "file": VALUE,
        "old": "new_mean = (1 - rate) * self.mean + rate * batch_mean",
        "new": "new_mean = rate * self.mean + (1 - rate) * batch_mean",
        "tests": [VALUE_TESTS],
    },
    {
        "name": "value loss in raw units (target not divided by the std)",
        "file": VALUE,
        "old": "target = (returns.float() - self.mean) / self.std",
        "new": "target = returns.float() - self.mean",
        "tests": [VALUE_TESTS],
    },
    # ---- temperature folding ------------------------------------------------------------------
    {
        "name": "temperature never folded into the policy",
        "file": TRAINER,
        "old": "        if config.temperature != 1.0:\n            fold_temperature(",
        "new": "        if False:\n            fold_temperature(",
        "tests": [TEMPERATURE],
    },
    {
        "name": "temperature folded before the prior's copy (the prior is tempered too)",
        "file": TRAINER,
        "old": PRIOR_COPY + FOLD,
        "new": FOLD + PRIOR_COPY,
        "tests": [TEMPERATURE],
    },
    {
        "name": "rollouts tempered again on top of the folded temperature",
        "file": TRAINER,
        "old": "self.policy, cfg.batch_size, cfg.length, self.rng, 1.0, self.device",
        "new": "self.policy, cfg.batch_size, cfg.length, self.rng, cfg.temperature, self.device",
        "tests": [TEMPERATURE],
    },
    # ---- KL estimators and controllers (rlmusic/algos/kl.py) ----------------------------------
    {
        "name": "KL loss importance weight not detached",
        "file": KL,
        "old": "weight = (policy_logp - old_logp).detach().exp()",
        "new": "weight = (policy_logp - old_logp).exp()",
        "tests": [MATH],
    },
    {
        "name": "KL loss measured against the sampling policy instead of the prior",
        "file": KL,
        "old": "return weight * 0.5 * (policy_logp - prior_logp) ** 2",
        "new": "return weight * 0.5 * (policy_logp - old_logp) ** 2",
        "tests": [MATH],
    },
    {
        "name": "split KL penalty with the event and pitch betas swapped",
        "file": KL,
        "old": "return coef * event + pitch_coef * pitch",
        "new": "return pitch_coef * event + coef * pitch",
        "tests": [MATH, PITCH_BETA],
    },
    {
        "name": "k3 with the log ratio inverted (the other KL's estimator)",
        "file": KL,
        "old": "log_ratio = prior_logp - policy_logp",
        "new": "log_ratio = policy_logp - prior_logp",
        "tests": [MATH],
    },
    {
        "name": "adaptive KL controller moves beta the wrong way",
        "file": KL,
        "old": "error = max(-0.2, min(0.2, measured_kl / self.target - 1.0))",
        "new": "error = max(-0.2, min(0.2, 1.0 - measured_kl / self.target))",
        "tests": [MATH],
    },
    {
        "name": "adaptive KL controller leaves the pitch beta behind",
        "file": KL,
        "old": "self.pitch_coef *= new / self.coef",
        "new": "self.pitch_coef *= 1.0",
        "tests": [MATH],
    },
    # ---- the default run's KL control (BatchedConfig's defaults) ----------------------------------
    {
        "name": "default run without KL control (kl_coef 0, kl_pitch_coef null)",
        "file": BATCHED_CONFIG,
        "old": KL_COEF_LINES.format(coef="2.5", pitch="2.0"),
        "new": KL_COEF_LINES.format(coef="0.0", pitch="None"),
        "tests": [COLLAPSE],
    },
    {
        "name": "default run without the event KL (kl_coef 0, the pitch beta kept)",
        "file": BATCHED_CONFIG,
        "old": "    kl_coef: float | None = 2.5\n",
        "new": "    kl_coef: float | None = 0.0\n",
        "tests": [COLLAPSE],
    },
]
