//! MQTT (being written)
