"""Mutants of RL Tuner's Q, Psi and G learning (rlmusic/algos/rl_tuner): the update's direction,
the three backups, the target network, Double DQN, acting, the saved policy and the KL weight.

Most are caught by tests/test_rl_tuner_guards.py (fast: a few seconds in all); the backups'
hand-computed transitions (tests/test_rl_tuner_targets.py), the checkpoints' recorded policy
(tests/test_rl_tuner_policies.py) catch the rest.
"""

GUARDS = "tests/test_rl_tuner_guards.py"
LEARNS = f"{GUARDS}::test_each_variant_learns_the_paid_note_and_raises_its_own_objective"
BELLMAN = f"{GUARDS}::test_trained_values_satisfy_the_variants_bellman_equation"
FROZEN = f"{GUARDS}::test_with_the_target_network_frozen_values_stop_flowing_back"
BACKUP = f"{GUARDS}::test_a_gradient_step_regresses_on_the_target_networks_backup"
POLYAK = f"{GUARDS}::test_the_target_network_is_a_polyak_average_of_the_online_one"
ACTING = f"{GUARDS}::test_acting_plays_the_variants_policy"
SAVED = f"{GUARDS}::test_the_saved_policy_is_the_variants_policy"
KL = f"{GUARDS}::test_each_variants_learning_reward_scales_with_the_kl_weight"
TARGETS = "tests/test_rl_tuner_targets.py"
POLICIES = "tests/test_rl_tuner_policies.py"

TRAINER = "rlmusic/algos/rl_tuner/trainer.py"
BACKUPS = "rlmusic/algos/rl_tuner/targets.py"
ACTS = "rlmusic/algos/rl_tuner/acting.py"
RUN = "rlmusic/algos/rl_tuner/run.py"

MUTANTS = [
    # ---- the update ----------------------------------------------------------------------
    {
        "name": "the TD loss ascended instead of descended",
        "file": TRAINER,
        "old": "        loss.backward()\n",
        "new": "        (-loss).backward()\n",
        "tests": [LEARNS, BELLMAN, BACKUP],
    },
    {
        "name": "the loss regresses max_a Q(s, a) instead of Q(s, a) of the note played",
        "file": TRAINER,
        "old": "chosen = values.gather(-1, batch.tokens.unsqueeze(-1)).squeeze(-1)",
        "new": "chosen = values.max(-1).values",
        "tests": [BACKUP, BELLMAN],
    },
    # ---- the target network --------------------------------------------------------------
    {
        "name": "the target network is never updated",
        "file": TRAINER,
        "old": "            torch._foreach_lerp_(self._target, self._online, cfg.tau)\n",
        "new": "            pass\n",
        "tests": [POLYAK, BELLMAN],
    },
    {
        "name": "Polyak lerps the online network toward the target (the wrong side)",
        "file": TRAINER,
        "old": "torch._foreach_lerp_(self._target, self._online, cfg.tau)",
        "new": "torch._foreach_lerp_(self._online, self._target, cfg.tau)",
        "tests": [POLYAK, BELLMAN],
    },
    {
        "name": "tau replaced by 1 (the target copies the online network every step)",
        "file": TRAINER,
        "old": "torch._foreach_lerp_(self._target, self._online, cfg.tau)",
        "new": "torch._foreach_lerp_(self._target, self._online, 1.0)",
        "tests": [POLYAK],
    },
    {
        "name": "tau replaced by 0 (the target network frozen at the start model)",
        "file": TRAINER,
        "old": "torch._foreach_lerp_(self._target, self._online, cfg.tau)",
        "new": "torch._foreach_lerp_(self._target, self._online, 0.0)",
        "tests": [POLYAK, BELLMAN],
    },
    {
        "name": "tau replaced by 1 - tau",
        "file": TRAINER,
        "old": "torch._foreach_lerp_(self._target, self._online, cfg.tau)",
        "new": "torch._foreach_lerp_(self._target, self._online, 1 - cfg.tau)",
        "tests": [POLYAK],
    },
    {
        "name": "the online network computes the targets (the target network is ignored)",
        "file": TRAINER,
        "old": "target_values = self.target_network(inputs)",
        "new": "target_values = self.q_network(inputs)",
        "tests": [BACKUP],
    },
    {
        "name": "the target network's values regressed (the online network never read)",
        "file": TRAINER,
        "old": "values = self.q_network(inputs)  # (K, T, V)",
        "new": "values = self.target_network(inputs)  # (K, T, V)",
        "tests": [BACKUP],
    },
    {
        "name": "the target network is the online network itself (no copy: trained by every step)",
        "file": TRAINER,
        "old": "self.target_network = frozen(self.q_network, copy=True)",
        "new": "self.target_network = self.q_network",
        "tests": [POLYAK, BACKUP],
    },
    {
        "name": "Double DQN picks the next action with the target network",
        "file": TRAINER,
        "old": "online_values=values.detach() if cfg.double_q else None",
        "new": "online_values=target_values.float() if cfg.double_q else None",
        "tests": [BACKUP],
    },
    # ---- the backups ---------------------------------------------------------------------
    {
        "name": "the reward enters the backup with the wrong sign",
        "file": BACKUPS,
        "old": "return rewards + gamma * torch.where(",
        "new": "return -rewards + gamma * torch.where(",
        "tests": [TARGETS, BACKUP, LEARNS],
    },
    {
        "name": "gamma dropped from the backup (the future undiscounted)",
        "file": BACKUPS,
        "old": "return rewards + gamma * torch.where(",
        "new": "return rewards + torch.where(",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "Q-learning backs up the min instead of the max",
        "file": BACKUPS,
        "old": "return target_values.max(dim=-1).values",
        "new": "return target_values.min(dim=-1).values",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "Psi's soft backup without its temperature",
        "file": BACKUPS,
        "old": "psi_temperature * torch.logsumexp(target_values / psi_temperature, dim=-1)",
        "new": "torch.logsumexp(target_values, dim=-1)",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "Psi's soft backup replaced by the hard max",
        "file": BACKUPS,
        "old": "psi_temperature * torch.logsumexp(target_values / psi_temperature, dim=-1)",
        "new": "target_values.max(dim=-1).values",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "G's backup subtracts the prior's log-probs",
        "file": BACKUPS,
        "old": "torch.logsumexp(prior_log_probs + target_values, dim=-1)",
        "new": "torch.logsumexp(target_values - prior_log_probs, dim=-1)",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "G's backup without the prior inside (Psi's backup)",
        "file": BACKUPS,
        "old": "torch.logsumexp(prior_log_probs + target_values, dim=-1)",
        "new": "torch.logsumexp(target_values, dim=-1)",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "G's prior outside the soft max (an expectation of log p added after it)",
        "file": BACKUPS,
        "old": "torch.logsumexp(prior_log_probs + target_values, dim=-1)",
        "new": "torch.logsumexp(target_values, dim=-1) + prior_log_probs.mean(dim=-1)",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "the piece's end is never marked (targets bootstrap past the last step)",
        "file": BACKUPS,
        "old": "dones[:, -1] = True",
        "new": "dones[:, -1] = False",
        "tests": [BACKUP, BELLMAN],
    },
    {
        "name": "the terminal mask inverted (only the last step bootstraps)",
        "file": BACKUPS,
        "old": "torch.where(dones.bool(), torch.zeros_like(value), value)",
        "new": "torch.where(dones.bool(), value, torch.zeros_like(value))",
        "tests": [BACKUP, BELLMAN],
    },
    # ---- acting --------------------------------------------------------------------------
    {
        "name": "greedy acting plays the argmin",
        "file": ACTS,
        "old": "greedy = logits.argmax(dim=-1)",
        "new": "greedy = logits.argmin(dim=-1)",
        "tests": [ACTING, LEARNS],
    },
    {
        "name": "Psi acts without its temperature",
        "file": ACTS,
        "old": "return values / psi_temperature",
        "new": "return values",
        "tests": [ACTING],
    },
    {
        "name": "G acts on G alone (the prior left out of p_prior exp(G))",
        "file": ACTS,
        "old": "return values + prior_log_probs",
        "new": "return values",
        "tests": [ACTING],
    },
    {
        "name": "G acts on G / p_prior",
        "file": ACTS,
        "old": "return values + prior_log_probs",
        "new": "return values - prior_log_probs",
        "tests": [ACTING],
    },
    {
        "name": "the Boltzmann temperature applied to psi and g as well",
        "file": ACTS,
        "old": 'scale = temperature if variant == "q" else 1.0',
        "new": "scale = temperature",
        "tests": [ACTING],
    },
    {
        "name": "epsilon-greedy explores with probability 1 - epsilon",
        "file": ACTS,
        "old": "< float(epsilons[t])",
        "new": ">= float(epsilons[t])",
        "tests": [LEARNS, ACTING],
    },
    # ---- the saved policy ----------------------------------------------------------------
    {
        "name": "Psi's saved policy at temperature 1 / c_T",
        "file": TRAINER,
        "old": "fold_temperature(frozen(self.q_network, copy=True), cfg.psi_temperature)",
        "new": "fold_temperature(frozen(self.q_network, copy=True), 1 / cfg.psi_temperature)",
        "tests": [SAVED],
    },
    {
        "name": "G's saved policy is softmax(G) (the prior left out)",
        "file": TRAINER,
        "old": "return PriorProductGenerator(self.q_network, self.prior).eval()",
        "new": "return self.q_network",
        "tests": [SAVED],
    },
    {
        "name": "G's saved policy built on the target network instead of the prior",
        "file": TRAINER,
        "old": "PriorProductGenerator(self.q_network, self.prior)",
        "new": "PriorProductGenerator(self.q_network, self.target_network)",
        "tests": [SAVED],
    },
    {
        "name": "Psi's checkpoint records temperature 1 (sample/evaluate play softmax(Psi))",
        "file": RUN,
        "old": 'return {"policy": psi_policy_info(config.psi_temperature)}',
        "new": 'return {"policy": psi_policy_info(1.0)}',
        "tests": [f"{POLICIES}::test_psi_checkpoint_loads_as_softmax_of_psi_over_its_temperature"],
    },
    {
        "name": "G's checkpoint records no policy (sample/evaluate play softmax(G))",
        "file": RUN,
        "old": 'return {"policy": g_policy_info(setup.reference.spec)}',
        "new": "return {}",
        "tests": [f"{POLICIES}::test_g_checkpoint_records_its_prior_and_loads_as_p_prior_exp_g"],
    },
    # ---- the KL weight -------------------------------------------------------------------
    {
        "name": "Psi's reward multiplied by w instead of divided",
        "file": RUN,
        "old": "scale = 1.0 / reference.weight if paid else 1.0",
        "new": "scale = reference.weight if paid else 1.0",
        "tests": [KL],
    },
    {
        "name": "G's task reward multiplied by w instead of divided",
        "file": RUN,
        "old": "return task / weight, {",
        "new": "return task * weight, {",
        "tests": [KL],
    },
    {
        "name": "q and psi learn without the prior's term",
        "file": RUN,
        "old": "score = setup.env_reward().score if reference.configured else setup.reward.score",
        "new": "score = setup.reward.score",
        "tests": [KL],
    },
    {
        "name": "algo.kl_coef ignored (the reward preset's weight always wins)",
        "file": "rlmusic/algos/rl_tuner/config.py",
        "old": "kl_coef=resolve_kl_coef(self.kl_coef, prior_weight)",
        "new": "kl_coef=float(prior_weight)",
        "tests": [KL],
    },
]
