"""What a workspace is made of: objects, libraries, files, and the manifest."""
