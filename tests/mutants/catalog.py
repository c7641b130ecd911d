"""The mutants: what each breaks, and the tests that must fail when it is applied.

Each entry names ``<id>.diff`` (beside this file) and the pytest node ids that kill it.
``equivalent`` marks a mutant that no test can kill because the code it removes is
redundant in the protocol (the reason is given); the runner expects it to survive.
"""
from collections import namedtuple

Mutant = namedtuple("Mutant", "id what tests equivalent")

T = "tests/test_seqmap_targeted.py::"
C = "tests/test_seqmap_concurrency.py::"
R = "tests/test_seqmap_resize_stress.py::"
AR = "tests/test_seqarray_resize.py::"
AS = "tests/test_seqlock_stress.py::"
AST = "tests/test_seqarray_stress.py::"
IR = "tests/test_kernel_orderings.py"


def _m(id, what, tests, equivalent=""):
    return Mutant(id, what, list(tests), equivalent)


MUTANTS = [
    # -------------------------------------------------- the seven of the original run, mapped
    _m("M1", "map reader: a hit skips S3-S4 (the sequence word re-read) in probe",
       [T + "test_hits_on_hot_multiword_values_are_never_torn"]),
    _m("M2a", "map reader: no G3 EPOCH re-check in lookup (m.get)",
       [T + "test_stable_keys_are_never_missed_while_rebuilds_recycle_buffers"]),
    _m("M2b", "map reader: no G3 EPOCH re-check in lookup_many (get_many)",
       [T + "test_stable_keys_are_never_missed_by_batches_while_rebuilds_recycle_buffers"]),
    _m("M3", "map writer: skips a LOCKED slot in _write_in's probe instead of waiting",
       [T + "test_adds_on_hot_keys_are_exact_while_jobs_move_the_table"]),
    _m("M4a", "move_chunk copies a slot without waiting for the writer that holds it",
       [T + "test_the_move_waits_for_a_writer_that_locked_before_the_flip"]),
    _m("M4b", "move_chunk: no S3-S4 after copying a slot",
       [T + "test_the_move_waits_for_a_writer_that_locked_before_the_flip",
        T + "test_adds_on_hot_keys_are_exact_while_jobs_move_the_table"],
       equivalent="a writer that locks a BUF slot after the mover's seq_cst load of it (which "
                  "saw it unlocked) comes after the flip in the seq_cst order, so its EPOCH "
                  "check fails and it restores the word without writing data: the words "
                  "cannot change under the copy (the re-check is a second line of defence)"),
    _m("M5", "L4: the unlock store relaxed instead of release (_seqlock.unlock)", [IR]),
    _m("M6", "SeqArray reader accepts a multi-word cell without S3-S4 (_read_at)",
       [AS + "test_seqlock_reads_are_never_torn"]),
    _m("M7", "njit add as get, then insert (not one locked read-modify-write)",
       [T + "test_adds_on_hot_keys_are_exact_while_jobs_move_the_table"]),
    # -------------------------------------------------- the write path and the resize
    _m("N2a", "map writer: no EPOCH check after locking the slot of its key (W3)",
       [T + "test_adds_on_hot_keys_are_exact_while_jobs_move_the_table"]),
    _m("N2b", "map writer: no EPOCH check after locking a free slot (W4)",
       [T + "test_fresh_keys_inserted_while_jobs_run_are_never_lost"]),
    _m("N1a", "map writer: no insert-counter CAS before writing a new key (W4)",
       [T + "test_racing_first_inserts_of_a_key_never_leave_it_twice"]),
    _m("N1b", "map writer: the insert counter read just before its CAS, not before the probe (W1)",
       [T + "test_racing_first_inserts_of_a_key_never_leave_it_twice"]),
    _m("N3a", "map reader in a move phase answers from BUF without looking at chunk states",
       [T + "test_reads_during_moves_see_every_write_that_returned"]),
    _m("N3b", "map reader in a move phase answers from NEXT without looking at chunk states",
       [T + "test_reads_during_moves_see_every_write_that_returned"]),
    _m("N5a", "claim_chunk claims a free chunk whatever its job's tag (a stale helper)",
       [T + "test_a_helper_that_slept_through_jobs_claims_nothing_of_a_later_one"]),
    _m("N5b", "claim_next ignores the cursor's tag (a stale helper)",
       [T + "test_a_helper_that_slept_through_jobs_claims_nothing_of_a_later_one"]),
    # -------------------------------------------------- orderings (identical code on x86-64)
    _m("M5b", "L2: the slot lock's CAS acq_rel instead of seq_cst (try_lock)", [IR]),
    _m("M5c", "W3/W4, A3: the EPOCH load after the lock acquire instead of seq_cst (epoch_ok)", [IR]),
    _m("M5d", "S1: the reader's first sequence load relaxed (load_seq)", [IR]),
    _m("M5e", "S3: no acquire fence before the sequence re-read (read_validate)", [IR]),
    _m("M5f", "G3: no acquire fence before the EPOCH re-read (epoch_changed)", [IR]),
    _m("M5g", "J4: the mover's slot load acquire instead of seq_cst (move_chunk)", [IR]),
    _m("M5h", "J4: the flip's EPOCH store release instead of seq_cst (flip)", [IR]),
    _m("M5i", "W2: the writer's probe loads relaxed (_write_in)", [IR]),
    _m("M5j", "J5: the chunk claim's CAS acq_rel instead of seq_cst (claim_chunk)", [IR]),
    _m("M5k", "L3: no release fence after the lock (try_lock)", [IR]),
    _m("M5l", "J6: BUF published relaxed (publish)", [IR]),
    _m("M5m", "W4: the insert counter's CAS without its release half (_write_in)", [IR]),
    _m("M5n", "A2: no acquire fence before the chunk state load (SeqArray read_cell)", [IR]),
    _m("M5o", "reads in a move: no acquire fence before the chunk state loads (lookup_moving)", [IR]),
    _m("M5p", "J5: a chunk marked done relaxed (finish_chunk)", [IR]),
    # -------------------------------------------------- catalogued after the merge: the killing
    # tests named here are the ones meant for each step; run_mutants.py says whether they do
    _m("N4a", "map mover: a chunk marked done before its slots move",
       [T + "test_reads_during_moves_see_every_write_that_returned", R + "test_64_threads_insert_remove_add_across_cooperative_resizes"]),
    _m("N4b", "map: a job published before every chunk is done",
       [T + "test_reads_during_moves_see_every_write_that_returned", R + "test_64_threads_insert_remove_add_across_cooperative_resizes"]),
    _m("N4c", "J6: EPOCH published before BUF", [IR]),
    _m("N6", "SeqArray writer waits for BUF to change (ABA), not EPOCH",
       [AR + "test_writers_waiting_on_a_moved_cell_finish_after_resizes_stop"]),
    _m("N7", "SeqArray shrink: LEN not dropped by the cells a move drops",
       [AR + "test_shrink_under_writers_drops_only_cells_past_the_end"]),
    _m("N8", "map mover: takes an EMPTY slot of NEXT without locking it (J5 placement)",
       [T + "test_concurrent_placements_into_one_chain_lose_nothing"]),
    _m("N9", "map writer in a move phase writes NEXT without making its chain's chunks done",
       [T + "test_fresh_keys_inserted_while_jobs_run_are_never_lost", R + "test_64_threads_insert_remove_add_across_cooperative_resizes"]),
    _m("N10", "SeqArray writer in a move phase writes the new buffer before its cell moved",
       [AST + "test_64_writers_read_their_own_last_write_across_resizes"]),
    _m("N11", "SeqArray read in a move phase answers from the old buffer whatever its chunk",
       [AST + "test_64_writers_read_their_own_last_write_across_resizes"]),
    _m("N12", "SeqArray move copies a cell without waiting for the writer that holds it",
       [AST + "test_a_resize_waits_for_a_writer_that_locked_before_the_flip"]),
    _m("N13", "SeqArray writer: no EPOCH check after the lock (A3)",
       [AST + "test_64_writers_read_their_own_last_write_across_resizes"]),
    _m("N15", "G1 reads BUF before EPOCH", [IR]),
]
