"""The InvokeAI backend: the diffusion and upscale stages rendered on an InvokeAI server.

graphs.py builds the graphs (pure), client.py speaks the REST API, server_models.py finds the models
on the server, remote_stages.py runs a stage's graph and brings its images home.
"""
