SELECT pipeline FROM pipeline_routes WHERE project_id = %s
