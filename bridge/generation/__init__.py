"""One generation: the job (job), the backend choice (backends), result files and images
(results), compositor nodes (nodes) and the worker thread (worker)."""
