"""Staff groups and their permissions, kept up to date after every migrate."""
