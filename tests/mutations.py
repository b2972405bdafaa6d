"""Critical mutations the suite must catch: Lua checks (no mutation tool
covers Lua), contract invariants and the crash tests' persistence settings.

Each entry breaks one thing in a temporary copy of the repository: in
``file``, the text ``old`` (which must occur exactly once, so entries are
located by content and survive lines added elsewhere) becomes ``new``; then
every test in ``must_fail`` must fail. ``python tests/mutation_runner.py``
applies them (``.ci/run`` does); ``tests/test_mutation_list.py`` checks at
every test run that each ``old`` still matches exactly once.

Node ids use fakeredis where its Lua runs the script as Redis would, and a
real server where only Redis shows it. Mutations no test can catch are not
listed; they are explained in README ("Mutation testing").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    must_fail: tuple[str, ...]


IDEM = "tests/test_idempotency.py::"
DELTA = "tests/test_snapshot_delta.py::"
IDX = "tests/test_index.py::"
BK = "tests/test_backup.py::"
RET = "tests/test_retention.py::"
LEASE = "tests/test_leases.py::"
CONF = "tests/test_conformance.py::"
RB = "tests/test_redis_backend.py::"
FR = "[fakeredis]"

MUTATIONS: tuple[Mutation, ...] = (
    # -- lib.lua: the checks every write script shares --------------------------------
    Mutation(
        "common_checks: odd id/value pairs accepted", "lua/lib.lua",
        "if (#ARGV - first + 1) % 3 ~= 0 then", "if false then",
        (RB + "test_script_refuses_malformed_arguments" + FR,),
    ),
    Mutation(
        "wrong_type: a foreign key type not noticed", "lua/lib.lua",
        "if got ~= 'none' and got ~= want then", "if false then",
        (RB + "test_foreign_value_of_wrong_type_fails_before_any_write" + FR,),
    ),
    Mutation(
        "fence: an expired or released lease still writes", "lua/lib.lua",
        "if held ~= token or epoch ~= token then", "if epoch ~= token then",
        (LEASE + "test_released_lease_fences_out_every_write" + FR,
         LEASE + "test_expired_lease_is_fenced_out_and_tokens_never_go_back" + FR),
    ),
    Mutation(
        "fence: no check at all", "lua/lib.lua",
        "if held ~= token or epoch ~= token then", "if false then",
        (LEASE + "test_steal_and_revoke_fence_out_the_holder_at_once" + FR,
         LEASE + "test_lease_arguments_are_checked" + FR),
    ),
    Mutation(
        "stored_sequence: a corrupt counter taken as a number", "lua/lib.lua",
        "if not n or n < 0 or n > MAX_SEQUENCE or n ~= math.floor(n) then", "if not n then",
        (RB + "test_corrupt_sequence_counter_refuses_every_write[fakeredis--5]",
         RB + "test_corrupt_sequence_counter_refuses_every_write[fakeredis-1.5]"),
    ),
    Mutation(
        "input_plan: an update appended to the order again", "lua/lib.lua",
        "if redis.call('HEXISTS', inputs_key, id) == 1 then",
        "if redis.call('HEXISTS', inputs_key, id) == 2 then",
        (CONF + "test_inputs_load_in_first_stored_order_through_every_write" + FR,),
    ),
    Mutation(
        "input_plan: a new input written to an input_order of a foreign type", "lua/lib.lua",
        "local failed = #new > 0 and wrong_type_of(order_at, 'list')",
        "local failed = false",
        (RB + "test_foreign_value_of_wrong_type_fails_before_any_write" + FR,),
    ),
    Mutation(
        "input_plan: a cleared key left in the index when no input claims one", "lua/lib.lua",
        "  if not claims and not held then", "  if not claims then",
        (CONF + "test_a_key_cleared_without_any_claim_leaves_the_index" + FR,),
    ),
    Mutation(
        "mark_runtime: runtimes not marked for listing", "lua/lib.lua",
        "  if not layout or (with_inputs and layout ~= tostring(LAYOUT_VERSION)) then", "  if false then",
        (CONF + "test_list_runtimes_pages_through_every_runtime" + FR,),
    ),
    Mutation(
        "touch_runtime: a runtime holding only a lease not marked for listing", "lua/lib.lua",
        "  redis.call('HSETNX', meta_key, 'layout', LAYOUT_VERSION)\n", "",
        (CONF + "test_a_runtime_holding_only_a_lease_is_listed" + FR,),
    ),
    Mutation(
        "earlier_commit: fingerprint not compared", "lua/lib.lua",
        "if not space or string.sub(earlier, 1, space - 1) ~= fingerprint then", "if not space then",
        (IDEM + "test_a_commit_id_reused_for_another_commit_is_refused" + FR,
         IDEM + "test_the_same_commit_id_with_other_input_updates_is_refused" + FR),
    ),
    Mutation(
        "earlier_commit: ids kept past their retention", "lua/lib.lua",
        "if not earlier or not at or now_ms() - tonumber(at) >= tonumber(retention_ms) then", "if not earlier or not at then",
        (IDEM + "test_commit_ids_are_kept_for_a_bounded_time" + FR,),
    ),
    Mutation(
        "remember_commit: commit-id keys never expire (issue 9)", "lua/lib.lua",
        "  redis.call('PEXPIRE', commits_key, retention_ms)\n  redis.call('PEXPIRE', log_key, retention_ms)\n", "",
        (RET + "test_commit_ids_expire_as_a_whole_after_the_last_commit" + FR,
         RET + "test_commit_ids_expire_as_a_whole_after_the_last_commit[redis]"),
    ),
    Mutation(
        "commit_checks: a used commit id answers nothing", "lua/lib.lua",
        "  if reused or earlier then\n    return reused, earlier\n  end\n", "",
        (IDEM + "test_retried_commit_returns_the_first_receipt_and_writes_nothing" + FR,
         IDEM + "test_a_commit_id_reused_for_another_commit_is_refused" + FR),
    ),
    # -- commit_boundary.lua -------------------------------------------------------------
    Mutation(
        "commit_boundary: checks' failure ignored", "lua/commit_boundary.lua",
        "commit_checks(12, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 9)\nif failed then",
        "commit_checks(12, ARGV[4], ARGV[5], ARGV[6], ARGV[7], 9)\nif false then",
        (RB + "test_foreign_value_of_wrong_type_fails_before_any_write" + FR,
         IDEM + "test_a_commit_id_reused_for_another_commit_is_refused" + FR),
    ),
    Mutation(
        "commit_boundary: a retried commit id commits again", "lua/commit_boundary.lua",
        "if earlier then\n  return {earlier, 1}\nend", "",
        (IDEM + "test_retried_commit_returns_the_first_receipt_and_writes_nothing" + FR,),
    ),
    Mutation(
        "commit_boundary: corrupt counter ignored", "lua/commit_boundary.lua",
        "if corrupt then", "if false then",
        (RB + "test_corrupt_sequence_counter_refuses_every_write[fakeredis-x]",),
    ),
    Mutation(
        "commit_boundary: sequences past 2^53 - 1", "lua/commit_boundary.lua",
        "if seq > MAX_SEQUENCE then", "if false then",
        (CONF + "test_sequence_space_ends_at_2_pow_53" + FR,),
    ),
    Mutation(
        "commit_boundary: the snapshot's receipt not recorded", "lua/commit_boundary.lua",
        "mark_runtime(KEYS[6], meta[1], plan, 'snapshot_receipt', field, 'snapshot_tag', ARGV[8])",
        "mark_runtime(KEYS[6], meta[1], plan, 'snapshot_tag', ARGV[8])",
        (RET + "test_the_snapshot_receipt_is_never_dropped" + FR,),
    ),
    Mutation(
        "commit_boundary: envelopes kept with the expected sequence when another was minted", "lua/commit_boundary.lua",
        "local stamp = seq_text ~= ARGV[11] and u64(seq) or nil", "local stamp = nil",
        (CONF + "test_sequence_space_ends_at_2_pow_53" + FR,
         RB + "test_two_stores_taking_turns_on_one_run_store_each_commit_s_own_sequence" + FR),
    ),
    Mutation(
        "commit_boundary: a snapshot written by atomic_apply still counted as its", "lua/commit_boundary.lua",
        "if meta[4] or meta[5] then", "if false then",
        (CONF + "test_snapshot_commit_stores_the_snapshot_and_mints_nothing" + FR,),
    ),
    # -- apply_receipt.lua ---------------------------------------------------------------
    Mutation(
        "apply_receipt: checks' failure ignored", "lua/apply_receipt.lua",
        "commit_checks(12, ARGV[5], ARGV[6], ARGV[7], ARGV[8], 10)\nif failed then",
        "commit_checks(12, ARGV[5], ARGV[6], ARGV[7], ARGV[8], 10)\nif false then",
        (LEASE + "test_steal_and_revoke_fence_out_the_holder_at_once" + FR,),
    ),
    Mutation(
        "apply_receipt: a retried commit id applies again", "lua/apply_receipt.lua",
        "if earlier then\n  return {earlier, 1}\nend", "",
        (IDEM + "test_retried_apply_is_quiet_instead_of_a_receipt_conflict" + FR,),
    ),
    Mutation(
        "apply_receipt: an existing receipt key overwritten", "lua/apply_receipt.lua",
        "if redis.call('HEXISTS', KEYS[2], field) == 1 then", "if false then",
        (CONF + "test_atomic_apply_is_atomic_on_receipt_conflict" + FR,),
    ),
    Mutation(
        "apply_receipt: corrupt counter ignored", "lua/apply_receipt.lua",
        "if corrupt then", "if false then",
        (RB + "test_corrupt_sequence_counter_refuses_every_write[fakeredis-x]",),
    ),
    Mutation(
        "apply_receipt: a lower sequence moves the counter back", "lua/apply_receipt.lua",
        "if not last or seq > last then", "if true then",
        (CONF + "test_next_sequence_counts_applied_receipts_and_leaves_gaps" + FR,),
    ),
    Mutation(
        "apply_receipt: the applied snapshot's receipt not recorded", "lua/apply_receipt.lua",
        "mark_runtime(KEYS[6], meta[1], plan, 'snapshot_applied', field, 'snapshot_tag', ARGV[9])",
        "mark_runtime(KEYS[6], meta[1], plan, 'snapshot_tag', ARGV[9])",
        (RET + "test_the_receipt_atomic_apply_stored_the_snapshot_with_stays" + FR,),
    ),
    Mutation(
        "apply_receipt: the snapshot it wrote still counted as receipt-less", "lua/apply_receipt.lua",
        "if meta[3] or meta[5] then", "if false then",
        (CONF + "test_snapshot_commit_stores_the_snapshot_and_mints_nothing" + FR,),
    ),
    # -- lifecycle_commit.lua ------------------------------------------------------------
    Mutation(
        "lifecycle_commit: shape and type checks ignored", "lua/lifecycle_commit.lua",
        "local failed = triples_error(3)\n  or fence_error",
        "local failed = fence_error",
        (RB + "test_script_refuses_malformed_arguments" + FR,),
    ),
    Mutation(
        "lifecycle_commit: fence ignored", "lua/lifecycle_commit.lua",
        "  or fence_error(KEYS[6], KEYS[5], ARGV[2])\n", "",
        (LEASE + "test_released_lease_fences_out_every_write" + FR,),
    ),
    # -- snapshot deltas, snapshot_commit, the idempotency index, restore ---------------
    Mutation(
        "snapshot_check: a delta lands on another writer's snapshot", "lua/lib.lua",
        "  if meta[2] ~= base_tag or (meta[3] or '-') ~= receipt or (meta[4] or '-') ~= applied\n"
        "      or redis.call('STRLEN', snapshot_key) ~= base_len then",
        "  if false then",
        (DELTA + "test_another_writer_in_between_makes_the_next_delta_whole" + FR,
         DELTA + "test_atomic_apply_and_delete_in_between" + FR),
    ),
    Mutation(
        "snapshot_check: only the tag checked (a worker of the release before deltas)", "lua/lib.lua",
        "  if meta[2] ~= base_tag or (meta[3] or '-') ~= receipt or (meta[4] or '-') ~= applied\n",
        "  if meta[2] ~= base_tag\n",
        (DELTA + "test_a_worker_of_the_release_before_deltas_is_seen_by_its_receipt" + FR,),
    ),
    Mutation(
        "snapshot_commit: fence ignored", "lua/snapshot_commit.lua",
        "local failed = fence_error(KEYS[6], KEYS[3], ARGV[2])\n",
        "local failed = nil\n",
        (CONF + "test_snapshot_commit_is_fenced_and_idempotent" + FR,),
    ),
    Mutation(
        "snapshot_commit: the snapshot it wrote still counted as a receipt's", "lua/snapshot_commit.lua",
        "if meta[3] or meta[4] then", "if false then",
        (CONF + "test_snapshot_commit_stores_the_snapshot_and_mints_nothing" + FR,),
    ),
    Mutation(
        "input_plan: a key claimed twice not noticed", "lua/lib.lua",
        "        return key_conflict(holder, ARGV[i], key), nil\n", "",
        (CONF + "test_two_inputs_claiming_one_key_are_refused_naming_both" + FR,),
    ),
    Mutation(
        "build_index: inputs changed since read not noticed", "lua/build_index.lua",
        "  if now[ARGV[i]] ~= ARGV[i + 1] then\n    return -1\n  end\n", "",
        (IDX + "test_index_build_refuses_inputs_that_changed_since_they_were_read" + FR,),
    ),
    Mutation(
        "restore_runtime: a runtime holding data overwritten without --replace", "lua/restore_runtime.lua",
        "if redis.call('TYPE', KEYS[7])['ok'] ~= 'none' and ARGV[1] ~= '1' then",
        "if false then",
        (BK + "test_restore_without_replace_leaves_a_runtime_holding_data_alone" + FR,),
    ),
    # -- delete_runtime.lua --------------------------------------------------------------
    Mutation(
        "delete_runtime: fence ignored", "lua/delete_runtime.lua",
        "if fenced then", "if false then",
        (LEASE + "test_a_stale_lease_cannot_delete_the_runtime" + FR,),
    ),
    Mutation(
        "delete_runtime: the fencing epoch deleted too", "lua/delete_runtime.lua",
        "unpack(KEYS, 2)", "unpack(KEYS, 1)",
        (LEASE + "test_delete_runtime_removes_everything_but_the_epoch" + FR,),
    ),
    # -- drop_receipts.lua / prune_commit_ids.lua ----------------------------------------
    Mutation(
        "drop_receipts: the snapshot's receipt dropped", "lua/drop_receipts.lua",
        "if ARGV[i] ~= minted and ARGV[i] ~= applied then", "if true then",
        (RET + "test_the_snapshot_receipt_is_never_dropped" + FR,
         RET + "test_the_receipt_atomic_apply_stored_the_snapshot_with_stays" + FR),
    ),
    Mutation(
        "prune_commit_ids: recent ids forgotten too", "lua/prune_commit_ids.lua",
        "now_ms() - tonumber(ARGV[1])", "now_ms()",
        (RET + "test_old_commit_ids_are_forgotten_in_batches" + FR,),
    ),
    # -- lease scripts -------------------------------------------------------------------
    Mutation(
        "lease_acquire: a held lease taken without steal", "lua/lease_acquire.lua",
        "if holder and holder ~= ARGV[1] and ARGV[3] ~= '1' then", "if false then",
        (LEASE + "test_tokens_grow_with_every_new_owner" + FR,),
    ),
    Mutation(
        "lease_acquire: the holder re-acquiring gets a new token", "lua/lease_acquire.lua",
        "if holder == ARGV[1] and ARGV[3] ~= '1' then", "if false then",
        (LEASE + "test_tokens_grow_with_every_new_owner" + FR,),
    ),
    Mutation(
        "lease_acquire: foreign key types ignored", "lua/lease_acquire.lua",
        "local bad_type = wrong_type({'hash', 'hash', 'string'})\nif bad_type then",
        "local bad_type = wrong_type({'hash', 'hash', 'string'})\nif false then",
        (RB + "test_lease_scripts_refuse_foreign_key_types" + FR,),
    ),
    Mutation(
        "lease_renew: a lost lease renewed", "lua/lease_renew.lua",
        "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then", "if false then",
        (LEASE + "test_expired_lease_is_fenced_out_and_tokens_never_go_back" + FR,),
    ),
    Mutation(
        "lease_release: another holder's lease released", "lua/lease_release.lua",
        "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then", "if false then",
        (LEASE + "test_releasing_a_lost_lease_leaves_the_new_holder_alone" + FR,),
    ),
    Mutation(
        "lease_revoke: foreign key types ignored", "lua/lease_revoke.lua",
        "local bad_type = wrong_type({'hash', 'hash', 'string'})\nif bad_type then",
        "local bad_type = wrong_type({'hash', 'hash', 'string'})\nif false then",
        (RB + "test_lease_scripts_refuse_foreign_key_types" + FR,),
    ),
    Mutation(
        "lease_revoke: the epoch not moved on", "lua/lease_revoke.lua",
        "local epoch = redis.call('INCR', KEYS[3])", "local epoch = tonumber(redis.call('GET', KEYS[3]))",
        (LEASE + "test_steal_and_revoke_fence_out_the_holder_at_once" + FR,),
    ),
    # -- contract.py (named in issue 9) ----------------------------------------------------
    Mutation(
        "commit fingerprint without the input updates (commit_session_boundary)", "redis_store/contract.py",
        'tag = _commit_tag(commit_id, b"commit", snapshot, prefix, *(entry.value for entry in inputs))',
        'tag = _commit_tag(commit_id, b"commit", snapshot, prefix)',
        (IDEM + "test_the_same_commit_id_with_other_input_updates_is_refused[memory]",
         IDEM + "test_the_same_commit_id_with_other_input_updates_is_refused" + FR),
    ),
    Mutation(
        "commit fingerprint without the input updates (atomic_apply)", "redis_store/contract.py",
        'tag = _commit_tag(commit_id, b"apply", snapshot, encoded, *(entry.value for entry in inputs))',
        'tag = _commit_tag(commit_id, b"apply", snapshot, encoded)',
        (IDEM + "test_the_same_commit_id_with_other_input_updates_is_refused[memory]",
         IDEM + "test_the_same_commit_id_with_other_input_updates_is_refused" + FR),
    ),
    Mutation(
        "prune_runtime reads past an unreadable row", "redis_store/contract.py",
        "states = await self.load_input_states(rid)",
        "states, _ = await self.load_readable_input_states(rid)",
        (RET + "test_an_unreadable_input_row_stops_pruning" + FR,),
    ),
    # -- the crash tests, run on a server without persistence (issue 9) ----------------------
    Mutation(
        "crash: the everysec test on a server without persistence", "tests/test_crash.py",
        'AOF_EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")',
        'AOF_EVERYSEC = ("--appendonly", "no", "--save", "")',
        ("tests/test_crash.py::test_sigkill_with_appendfsync_everysec_loses_at_most_a_tail_never_part",),
    ),
    Mutation(
        "crash: the RDB test on a server without persistence", "tests/test_crash.py",
        'RDB_EVERY_SECOND = ("--appendonly", "no", "--save", "1 1", *SLOW_SAVES)',
        'RDB_EVERY_SECOND = ("--appendonly", "no", "--save", "", *SLOW_SAVES)',
        ("tests/test_crash.py::test_sigkill_with_rdb_snapshots_loses_a_tail_never_part",),
    ),
)
