"""One generation: the job (job), the backend choice (backends), result files and images
(results), compositor nodes (nodes), the worker thread (worker) and source NODE, a Depth Map node's input
(node_source)."""
