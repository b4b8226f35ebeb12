"""A worked example of studykit plug-ins (see README "Test your own claim")."""
