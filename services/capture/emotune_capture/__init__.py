"""emotune capture: frames from cameras, files, streams, folders or uploads; faces out as 48x48 crops."""
