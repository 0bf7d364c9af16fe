/*
 * The names of the row kernels, one set per element type of the rows
 * (elem.h): every function of the files rows.c includes for each type, and
 * the types that hold a row, get the type's suffix (sum_exp ->
 * sum_exp_f32, sum_exp_bf16, ...) wherever they are written, so that the
 * same source compiles once per type into one translation unit.  Code that
 * works on floats whatever the row's type (the workspace's candidates,
 * probes, the processed row) calls the float32 instances by their full
 * names (kth_largest_f32).  A function added to those files is added here.
 */
#ifndef TP_NAMES_H
#define TP_NAMES_H

#define TP_E(name) TP_E2(name, TP_XSUF)
#define TP_E2(name, suffix) TP_E3(name, suffix)
#define TP_E3(name, suffix) name##suffix

#define tp_row TP_E(tp_row)
#define tp_list TP_E(tp_list)
#define tp_radix TP_E(tp_radix)

/* moments.c */
#define moments_centre TP_E(moments_centre)
#define tile_stop TP_E(tile_stop)
#define tail_moments TP_E(tail_moments)
#define add_moments TP_E(add_moments)
#define tile_sums TP_E(tile_sums)
#define tile_moments TP_E(tile_moments)
#define row_moments TP_E(row_moments)
#define row_moments_exact TP_E(row_moments_exact)

/* sums.c */
#define cut_exp TP_E(cut_exp)
#define vexp_setup TP_E(vexp_setup)
#define vexp TP_E(vexp)
#define tile_sum_exp TP_E(tile_sum_exp)
#define vectors_sum_exp TP_E(vectors_sum_exp)
#define sum_exp_runs TP_E(sum_exp_runs)
#define sum_exp_any TP_E(sum_exp_any)
#define sum_exp_store TP_E(sum_exp_store)
#define sum_exp TP_E(sum_exp)
#define sum_stored_store TP_E(sum_stored_store)
#define sum_exp_by_run TP_E(sum_exp_by_run)
#define tile_exp_band TP_E(tile_exp_band)
#define exp_band_chunk TP_E(exp_band_chunk)

/* scan.c */
#define first_equal TP_E(first_equal)
#define any_nan TP_E(any_nan)
#define scan_blocks TP_E(scan_blocks)

/* radix.c */
#define merge_hist_copies TP_E(merge_hist_copies)
#define crossing_bin TP_E(crossing_bin)
#define radix_select TP_E(radix_select)
#define radix_select_count TP_E(radix_select_count)
#define radix_select_mass TP_E(radix_select_mass)

/* kth.c */
#define kth_largest_small TP_E(kth_largest_small)
#define quickselect_pivot TP_E(quickselect_pivot)
#define quickselect_round TP_E(quickselect_round)
#define kth_largest_quickselect TP_E(kth_largest_quickselect)
#define bisect_key TP_E(bisect_key)
#define bisect_unkey TP_E(bisect_unkey)
#define kth_largest_bisect TP_E(kth_largest_bisect)
#define kth_largest TP_E(kth_largest)

/* gather.c */
#define gather_hits TP_E(gather_hits)
#define gather_allowed TP_E(gather_allowed)
#define gather_range TP_E(gather_range)
#define gather_between TP_E(gather_between)
#define gather_at_least TP_E(gather_at_least)
#define gather_band_count_above TP_E(gather_band_count_above)
#define filter_candidates TP_E(filter_candidates)
#define probe_size TP_E(probe_size)
#define probe_lines TP_E(probe_lines)
#define in_probe TP_E(in_probe)

/* proc.c */
#define allows TP_E(allows)
#define process_range TP_E(process_range)
#define tp_process TP_E(tp_process)
#define sort_patches TP_E(sort_patches)
#define patches_at_least TP_E(patches_at_least)
#define gather_processed TP_E(gather_processed)
#define first_allowed_equal TP_E(first_allowed_equal)
#define scan_processed_blocks TP_E(scan_processed_blocks)
#define tp_make_patches TP_E(tp_make_patches)
#define tp_fold_patches TP_E(tp_fold_patches)

/* mass.c */
#define partition_select TP_E(partition_select)
#define select_by_mass_small TP_E(select_by_mass_small)
#define value_bins TP_E(value_bins)
#define value_range TP_E(value_range)
#define select_by_value_bins TP_E(select_by_value_bins)
#define spread_median TP_E(spread_median)
#define pack_side TP_E(pack_side)
#define select_by_partition TP_E(select_by_partition)
#define select_stored TP_E(select_stored)
#define select_listed_by_mass TP_E(select_listed_by_mass)

/* topk.c */
#define top_k_block_size TP_E(top_k_block_size)
#define tp_scan_top_k TP_E(tp_scan_top_k)
#define tp_scan_processed TP_E(tp_scan_processed)
#define gather_top_blocks TP_E(gather_top_blocks)
#define top_k_by_blocks TP_E(top_k_by_blocks)
#define kth_largest_by_band TP_E(kth_largest_by_band)
#define top_k_candidates TP_E(top_k_candidates)

/* topp.c */
#define run_length TP_E(run_length)
#define nucleus_probe TP_E(nucleus_probe)
#define weighted_value_range TP_E(weighted_value_range)
#define probe_band TP_E(probe_band)
#define band_pass TP_E(band_pass)
#define add_band_to_runs TP_E(add_band_to_runs)
#define bracketed_nucleus_threshold TP_E(bracketed_nucleus_threshold)
#define add_level0_mass TP_E(add_level0_mass)
#define wide_nucleus_threshold TP_E(wide_nucleus_threshold)
#define surely_too_many TP_E(surely_too_many)
#define sum_exp_gather TP_E(sum_exp_gather)
#define nucleus_bound TP_E(nucleus_bound)
#define nucleus_threshold TP_E(nucleus_threshold)

/* later.c (its code on floats is compiled once, unsuffixed) */
#define klist_make TP_E(klist_make)

/* keep.c */
#define min_p_keeps TP_E(min_p_keeps)
#define min_p_threshold TP_E(min_p_threshold)
#define top_n_sigma_threshold TP_E(top_n_sigma_threshold)
#define first_cuts TP_E(first_cuts)
#define keep_filtered TP_E(keep_filtered)
#define keep_llama TP_E(keep_llama)
#define tp_keep_filters TP_E(tp_keep_filters)

/* kernels.c */
#define tp_scan TP_E(tp_scan)
#define one_hot TP_E(one_hot)
#define normalized_exp TP_E(normalized_exp)
#define tp_softmax TP_E(tp_softmax)
#define log_z TP_E(log_z)
#define tp_log_softmax TP_E(tp_log_softmax)
#define tp_token_logprob TP_E(tp_token_logprob)
#define tp_logsumexp TP_E(tp_logsumexp)
#define tp_widen TP_E(tp_widen)
#define tp_mask TP_E(tp_mask)
#define tp_filtered_probs TP_E(tp_filtered_probs)
#define ranks_before TP_E(ranks_before)
#define sort_by_rank TP_E(sort_by_rank)
#define tp_top_logprobs TP_E(tp_top_logprobs)

/* draw.c */
#define list_id TP_E(list_id)
#define crossing_in_tile TP_E(crossing_in_tile)
#define first_crossing TP_E(first_crossing)
#define draw_one_tile TP_E(draw_one_tile)
#define listed_logit TP_E(listed_logit)
#define draw_listed TP_E(draw_listed)
#define draw_runs TP_E(draw_runs)
#define tp_sample TP_E(tp_sample)

/* verify.c */
#define tp_verify_draft TP_E(tp_verify_draft)

#endif /* TP_NAMES_H */
