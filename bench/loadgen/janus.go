package main

import (
	"errors"

	"github.com/pion/webrtc/v3"
)

// joinJanus joins Janus's VideoRoom as this participant.
func (p *participant) joinJanus(api *webrtc.API) error {
	return errors.New("the janus target is not written yet")
}
