//! The offline side of shardcast: cache simulation over a request trace (LRU, the offline Belady bound,
//! LRU fed by prefetches) and the sequential next-access predictor that `shardcast replay` drives.
