//! What changes between two compiled policies (to come).
